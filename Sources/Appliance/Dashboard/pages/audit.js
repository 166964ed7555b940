// /audit (admins): the audit log, newest first, filtered by actor, action, target and time,
// a page at a time ("Load more" continues from the answer's `next`). The filters live in the
// query string, so a reload or a shared link shows the same entries.
import { api } from "../api.js";
import { formatTime, h, replaceChildren, setText, showError } from "../dom.js";

const PAGE = 50;
const TEXT_FILTERS = [["actor", "Actor", "username"], ["action", "Action", "e.g. login"], ["target", "Target", "e.g. instance:3"]];
// What the daemon records today (a suggestion list; any text may be typed).
const ACTIONS = ["login", "logout", "setup", "password.change", "session.revoke", "token.create", "token.revoke",
    "passkey.add", "passkey.remove", "agent.install", "agent.activate", "agent.delete", "provider.save", "provider.delete",
    "user.create", "user.update", "user.delete", "instance.assign", "instance.unassign", "instance.create",
    "instance.delete", "instance.start", "instance.stop", "instance.restart", "instance.settings", "instance.exec",
    "settings.defaults", "service.restart", "control.take", "control.release", "terminal.open",
    "file.write", "file.mkdir", "file.move", "file.delete"];
const OUTCOME_CLASS = { ok: "state-running", denied: "badge-warn", failed: "state-failed" };

/** A <input type="datetime-local"> value (local time) as RFC 3339 UTC, or "" when empty. */
function localToRFC3339(value) {
    if (!value) return "";
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** RFC 3339 back to a datetime-local value in local time. */
function rfc3339ToLocal(value) {
    const d = new Date(value || "");
    if (!value || Number.isNaN(d.getTime())) return "";
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export async function auditPage(root, ctx) {
    document.title = "Audit log · Claworc";
    const main = ctx.shell();

    const inputs = {};
    for (const [key, label, placeholder] of TEXT_FILTERS) {
        inputs[key] = h("input", {
            id: `audit-${key}`, type: "text", placeholder, autocomplete: "off", spellcheck: "false",
            list: key === "action" ? "audit-actions" : null, "aria-label": label,
            value: ctx.query.get(key) || "",
        });
    }
    for (const key of ["since", "until"]) {
        inputs[key] = h("input", { id: `audit-${key}`, type: "datetime-local", value: rfc3339ToLocal(ctx.query.get(key)) });
    }
    const apply = h("button", { id: "audit-apply", class: "btn btn-primary", type: "submit" }, "Filter");
    const clear = h("button", { id: "audit-clear", class: "btn btn-ghost", type: "button" }, "Clear");
    const labelled = (text, input) => h("label", { class: "filter" }, h("span", {}, text), input);
    const form = h("form", { class: "audit-filters", id: "audit-filters", novalidate: true },
        ...TEXT_FILTERS.map(([key, label]) => labelled(label, inputs[key])),
        labelled("Since", inputs.since), labelled("Until", inputs.until),
        h("div", { class: "filter-buttons" }, apply, clear),
        h("datalist", { id: "audit-actions" }, ACTIONS.map((a) => h("option", { value: a }))));

    const error = h("p", { class: "error", role: "alert", id: "audit-error", hidden: true });
    const tbody = h("tbody", { id: "audit-rows" });
    const table = h("table", { class: "table audit-table", id: "audit-table", hidden: true },
        h("thead", {}, h("tr", {},
            ["Time", "Actor", "Action", "Target", "Outcome", "Client", "Detail"].map((t) => h("th", { scope: "col" }, t)))),
        tbody);
    const status = h("div", { class: "empty muted", id: "audit-status" }, "Loading…");
    const more = h("button", { type: "button", class: "btn btn-secondary", id: "audit-more", hidden: true }, "Load more");

    replaceChildren(main,
        h("div", { class: "page-head" },
            h("div", {}, h("h1", {}, "Audit log"),
                h("p", { class: "muted" }, "Who did what on this appliance, refusals included. Filters match exactly."))),
        h("section", { class: "card create-card" }, form),
        error,
        h("section", { class: "card table-card" }, h("div", { class: "table-scroll" }, table), status),
        h("div", { class: "load-more" }, more));

    // ?limit= sets the page size (the form does not offer it; links and tests may).
    const asked = Number(ctx.query.get("limit"));
    const limit = Number.isInteger(asked) && asked >= 1 && asked <= 1000 ? asked : PAGE;
    let filter = {};
    let next = null;
    let generation = 0;   // a new filter makes answers to the old one stale

    function readFilter() {
        const f = {};
        for (const [key] of TEXT_FILTERS) if (inputs[key].value.trim()) f[key] = inputs[key].value.trim();
        for (const key of ["since", "until"]) {
            const value = localToRFC3339(inputs[key].value);
            if (value === null) return { problem: `${key === "since" ? "Since" : "Until"} is not a valid time.` };
            if (value) f[key] = value;
        }
        return { filter: f };
    }

    function row(e) {
        return h("tr", { class: `outcome-${e.outcome}`, dataset: { entryId: String(e.id), action: e.action, outcome: e.outcome } },
            h("td", { class: "nowrap muted", title: e.time }, formatTime(e.time, { seconds: true })),
            h("td", { dataset: { field: "actor" } }, e.actor || h("span", { class: "muted" }, "—")),
            h("td", { class: "mono", dataset: { field: "action" } }, e.action),
            h("td", { class: "mono", dataset: { field: "target" } }, e.target || ""),
            h("td", { dataset: { field: "outcome" } }, h("span", { class: `badge ${OUTCOME_CLASS[e.outcome] || ""}` }, e.outcome)),
            h("td", { class: "mono muted" }, e.client || ""),
            h("td", { class: "audit-detail", dataset: { field: "detail" } }, e.detail || ""));
    }

    async function fetchPage(append) {
        const mine = ++generation;
        more.disabled = true;
        showError(error, "");
        try {
            const res = await api.audit({ ...filter, limit, before: append ? next : undefined }, { signal: ctx.signal });
            if (!ctx.alive || mine !== generation) return;
            const entries = res.entries || [];
            if (!append) replaceChildren(tbody);
            for (const e of entries) tbody.appendChild(row(e));
            next = res.next ?? null;
            table.hidden = tbody.children.length === 0;
            status.hidden = tbody.children.length !== 0;
            setText(status, Object.keys(filter).length ? "No entries match these filters." : "The audit log is empty.");
            more.hidden = next === null;
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401 || mine !== generation) return;
            status.hidden = true;
            showError(error, `Could not load the audit log: ${e.message}`);
        } finally {
            if (mine === generation) more.disabled = false;
        }
    }

    function search() {
        const { filter: f, problem } = readFilter();
        if (problem) { showError(error, problem); return; }
        filter = f;
        next = null;
        const query = new URLSearchParams(limit === PAGE ? filter : { ...filter, limit }).toString();
        history.replaceState(null, "", query ? `/audit?${query}` : "/audit");
        fetchPage(false);
    }

    form.addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
    clear.addEventListener("click", () => {
        for (const input of Object.values(inputs)) input.value = "";
        search();
    });
    more.addEventListener("click", () => fetchPage(true));
    search();
}
