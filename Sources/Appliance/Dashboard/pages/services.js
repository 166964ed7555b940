// The services panel of an instance page: each service's state, uptime (from started_at),
// restarts, last exit and reason, with a Restart button that asks the init to restart just
// that service (the way back from "failed"). Fed by the instance's events stream (each change
// the init pushes) and the page's poll; a restart asks for a poll at once.
import { api } from "../api.js";
import { h, replaceChildren, setText, showError } from "../dom.js";
import { AgentBanner } from "./agent-status.js";

function uptime(startedAt, now) {
    if (!startedAt) return "—";
    let s = Math.max(0, Math.floor((now - startedAt) / 1000));
    const d = Math.floor(s / 86400); s %= 86400;
    const hr = Math.floor(s / 3600); s %= 3600;
    const m = Math.floor(s / 60); s %= 60;
    if (d) return `${d}d ${hr}h`;
    if (hr) return `${hr}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
}

export class ServicesPanel {
    constructor(id, signal, onChange) {
        this.id = id;
        this.signal = signal;
        this.onChange = onChange;
        this.services = [];
        this.busy = new Set();
        this.rows = h("tbody", { id: "services-rows" });
        this.error = h("p", { class: "error", role: "alert", id: "services-error", hidden: true });
        this.agent = new AgentBanner();
        this.element = h("section", { class: "services-panel", id: "services-panel", "aria-label": "Services" },
            this.agent.element, this.error,
            h("table", { class: "table services-table" },
                h("thead", {}, h("tr", {},
                    ...["Service", "State", "Uptime", "Restarts", "Last exit", "Reason", ""].map((t) => h("th", {}, t)))),
                this.rows));
        // Uptime moves on between polls.
        const timer = setInterval(() => this.tick(), 1000);
        signal.addEventListener("abort", () => clearInterval(timer));
    }

    update(services, running) {
        this.services = services || [];
        this.running = running;
        this.agent.update(this.services, running);
        this.element.hidden = this.services.length === 0;
        const key = JSON.stringify([running, [...this.busy], this.services]);
        if (this.key === key) return;
        this.key = key;
        replaceChildren(this.rows, this.services.map((svc) => this.row(svc)));
    }

    row(svc) {
        const btn = h("button", {
            type: "button", class: "btn btn-sm btn-secondary", id: `service-restart-${svc.name}`,
            dataset: { service: svc.name }, disabled: !this.running || this.busy.has(svc.name),
            onclick: () => this.restart(svc.name),
        }, this.busy.has(svc.name) ? "Restarting…" : "Restart");
        return h("tr", { dataset: { service: svc.name, state: svc.state } },
            h("td", { class: "svc-name" }, svc.name),
            h("td", {}, h("span", { class: `chip svc-${svc.state}` }, h("span", { class: "dot", "aria-hidden": "true" }), svc.state)),
            h("td", { class: "svc-uptime", dataset: { startedAt: svc.started_at ?? "" } },
                svc.state === "ready" || svc.state === "starting" ? uptime(svc.started_at, Date.now()) : "—"),
            h("td", {}, String(svc.restarts ?? 0) + (svc.oom_kills ? ` (${svc.oom_kills} OOM)` : "")),
            h("td", {}, svc.last_exit || "—"),
            h("td", { class: "svc-reason" }, svc.reason || svc.error || ""),
            h("td", {}, btn));
    }

    tick() {
        for (const cell of this.rows.querySelectorAll(".svc-uptime")) {
            const started = Number(cell.dataset.startedAt);
            const state = cell.parentElement.dataset.state;
            if (started && (state === "ready" || state === "starting")) setText(cell, uptime(started, Date.now()));
        }
    }

    async restart(name) {
        this.busy.add(name);
        this.update(this.services, this.running);
        showError(this.error, "");
        try {
            const res = await api.restartService(this.id, name, { signal: this.signal });
            this.busy.delete(name);
            if (res && res.services) this.update(res.services, this.running);
        } catch (e) {
            this.busy.delete(name);
            if (e.aborted) return;
            showError(this.error, `Could not restart ${name}: ${e.message}`);
            this.update(this.services, this.running);
        }
        this.onChange();
    }
}
