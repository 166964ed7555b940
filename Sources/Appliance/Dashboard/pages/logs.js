// The Logs tab of an instance: its services' lines as the init wrote them, live.
// The tail comes with the first event-stream message and new lines follow (EventSource on
// /logs?follow=1); the filter and pause act on what is kept here, so a paused view still
// counts what arrives and shows it on resume. Auto-scroll follows the bottom until the user
// scrolls up, and resumes when they scroll back down.
import { logsURL } from "../api.js";
import { h, setText } from "../dom.js";

const TAIL = 500;
const KEEP = 5000;          // lines kept in the page; older ones are dropped
const RETRY_MS = 3000;      // after the stream ends (instance restarted, network), reconnect

export class LogsPanel {
    constructor(id, signal) {
        this.id = id;
        this.lines = [];
        this.held = [];      // arrived while paused
        this.source = null;
        this.retry = null;
        this.paused = false;
        this.stick = true;
        this.active = false;
        this.service = "";
        this.select = h("select", { id: "logs-service", "aria-label": "Service" },
            ...[["", "All services"], ["xvfb", "xvfb"], ["vnc", "vnc"], ["chromium", "chromium"], ["init", "init"]]
                .map(([value, label]) => h("option", { value }, label)));
        this.filter = h("input", { type: "search", id: "logs-filter", placeholder: "Filter", "aria-label": "Filter lines" });
        this.pauseBtn = h("button", { type: "button", class: "btn btn-sm btn-secondary", id: "logs-pause" }, "Pause");
        this.downloadBtn = h("button", { type: "button", class: "btn btn-sm btn-secondary", id: "logs-download" }, "Download");
        this.status = h("span", { class: "muted", id: "logs-status", role: "status" }, "");
        this.view = h("pre", { class: "logs-view", id: "logs-view", tabindex: "0" });
        this.element = h("section", { class: "logs", id: "logs-panel", "aria-label": "Logs" },
            h("div", { class: "files-bar" },
                this.select, this.filter,
                h("div", { class: "spacer" }),
                this.status, this.pauseBtn, this.downloadBtn),
            this.view);
        this.select.addEventListener("change", () => { this.service = this.select.value; this.connect(); });
        this.filter.addEventListener("input", () => this.render());
        this.pauseBtn.addEventListener("click", () => this.setPaused(!this.paused));
        this.downloadBtn.addEventListener("click", () => this.download());
        this.view.addEventListener("scroll", () => {
            const v = this.view;
            this.stick = v.scrollHeight - v.scrollTop - v.clientHeight < 24;
        });
        signal.addEventListener("abort", () => this.stop());
    }

    /** The tab was shown: start streaming (once). */
    show() {
        this.active = true;
        if (!this.source) this.connect();
    }

    hide() {
        this.active = false;
        this.stop();
    }

    stop() {
        clearTimeout(this.retry);
        this.retry = null;
        if (this.source) { this.source.close(); this.source = null; }
    }

    connect(tail = TAIL) {
        this.stop();
        if (tail > 0) { this.lines = []; this.held = []; this.render(); }
        const source = new EventSource(logsURL(this.id, { service: this.service, tail, follow: 1 }));
        this.source = source;
        this.setStatus("connecting…", "connecting");
        source.onopen = () => this.setStatus(this.paused ? "paused" : "live", "live");
        source.onmessage = (ev) => {
            let line;
            try { line = JSON.parse(ev.data); } catch { return; }
            if (this.paused) { this.held.push(line); this.setStatus(`paused · ${this.held.length} new`, "paused"); return; }
            this.add([line]);
        };
        source.onerror = () => {
            // EventSource would reconnect by itself and send the whole tail again; instead
            // reconnect with no tail, so lines are not shown twice.
            if (this.source !== source) return;
            source.close();
            this.source = null;
            this.setStatus("disconnected; retrying…", "disconnected");
            if (this.active) this.retry = setTimeout(() => this.connect(0), RETRY_MS);
        };
    }

    setStatus(text, state) {
        setText(this.status, text);
        this.status.dataset.state = state;
    }

    setPaused(paused) {
        this.paused = paused;
        setText(this.pauseBtn, paused ? "Resume" : "Pause");
        this.pauseBtn.setAttribute("aria-pressed", String(paused));
        this.element.dataset.paused = String(paused);
        if (!paused) {
            const held = this.held;
            this.held = [];
            this.add(held);
            if (this.source) this.setStatus("live", "live");
        } else {
            this.setStatus("paused", "paused");
        }
    }

    add(lines) {
        if (lines.length === 0) return;
        this.lines.push(...lines);
        if (this.lines.length > KEEP) this.lines.splice(0, this.lines.length - KEEP);
        // Appending keeps the user's selection; a full render is only for filter changes.
        const needle = this.filter.value.toLowerCase();
        const frag = document.createDocumentFragment();
        for (const line of lines) if (this.matches(line, needle)) frag.appendChild(this.row(line));
        this.view.appendChild(frag);
        while (this.view.childElementCount > KEEP) this.view.firstElementChild.remove();
        if (this.stick) this.view.scrollTop = this.view.scrollHeight;
    }

    render() {
        const needle = this.filter.value.toLowerCase();
        this.view.textContent = "";
        const frag = document.createDocumentFragment();
        for (const line of this.lines) if (this.matches(line, needle)) frag.appendChild(this.row(line));
        this.view.appendChild(frag);
        if (this.stick) this.view.scrollTop = this.view.scrollHeight;
    }

    matches(line, needle) {
        return !needle || line.text.toLowerCase().includes(needle) || line.service.toLowerCase().includes(needle);
    }

    static format(line) {
        const ts = line.ts ? line.ts.slice(11, 23) : "            ";
        return `${ts} ${line.service.padEnd(8)} ${line.stream.padEnd(6)} ${line.text}`;
    }

    row(line) {
        return h("div", { class: `log-line log-${line.stream}`, dataset: { service: line.service, stream: line.stream } },
            LogsPanel.format(line));
    }

    /** What is shown (the filter applied), as a text file. */
    download() {
        const needle = this.filter.value.toLowerCase();
        const text = this.lines.filter((l) => this.matches(l, needle))
            .map((l) => `${l.ts || "-"} ${l.service} ${l.stream} ${l.text}`).join("\n") + "\n";
        const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
        const a = h("a", { href: url, download: `instance-${this.id}-${this.service || "all"}.log` });
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
    }
}
