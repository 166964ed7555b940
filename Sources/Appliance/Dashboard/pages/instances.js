// /: the instance list, a create form, and per-row Start / Stop / Delete. Polls every 2 s.
// A plain user sees only their assigned instances (the API's doing) and no create or delete:
// those are the admin's.
import { api } from "../api.js";
import { formatTime, h, replaceChildren, setText, showError } from "../dom.js";
import { Poller } from "../poller.js";
import { allowedActions, stateBadge, updateServiceChips, updateStateBadge } from "../status.js";

const NAME_RULE = /^[a-z][a-z0-9-]{0,39}$/;
const NAME_HINT = "1–40 characters: lowercase letters, digits and dashes, starting with a letter.";
const POLL_MS = 2000;

/** Client-side check of the name rule; returns a message, or "" when the name is fine. */
export function nameProblem(name) {
    if (!name) return "Enter a name for the new instance.";
    if (name.length > 40) return "Names are at most 40 characters long.";
    if (!/^[a-z]/.test(name)) return "Names start with a lowercase letter.";
    if (!NAME_RULE.test(name)) return "Use only lowercase letters, digits and dashes.";
    return "";
}

export async function instancesPage(root, ctx) {
    document.title = "Instances · Claworc";
    const main = ctx.shell();
    const isAdmin = !!ctx.session.user && ctx.session.user.role === "admin";

    // ---- create form
    const nameInput = h("input", {
        id: "create-name", name: "name", type: "text", maxlength: 40, required: true,
        placeholder: "e.g. research-box", autocomplete: "off", autocapitalize: "off", spellcheck: "false",
        "aria-describedby": "create-hint",
    });
    const createBtn = h("button", { id: "create-submit", class: "btn btn-primary", type: "submit" }, "Create instance");
    const createError = h("p", { class: "error", role: "alert", id: "create-error", hidden: true });
    const createForm = h("form", { class: "create-form", id: "create-form", novalidate: true },
        h("label", { for: "create-name", class: "visually-hidden" }, "New instance name"),
        nameInput, createBtn);

    // ---- table
    // poll failures (cleared by the next good poll) and action failures (kept until dismissed
    // or the next action) are separate, so a refresh never wipes an error the user hasn't read.
    const listError = h("p", { class: "error", role: "alert", id: "list-error", hidden: true });
    const actionErrorText = h("span", {});
    const actionError = h("div", { class: "error error-dismissable", role: "alert", id: "action-error", hidden: true },
        actionErrorText,
        h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", onclick: () => setActionError("") }, "×"));
    const setActionError = (msg) => { setText(actionErrorText, msg || ""); actionError.hidden = !msg; };
    const tbody = h("tbody", { id: "instance-rows" });
    const empty = h("div", { class: "empty", id: "instances-empty", hidden: true },
        h("p", { class: "empty-title" }, "No instances yet"),
        h("p", { class: "muted" }, isAdmin
            ? "Create one above. Each instance is a sandboxed Chromium you can watch and drive from here."
            : "No instance is assigned to you yet. An admin can assign one on the Users page."));
    const loading = h("div", { class: "empty muted", id: "instances-loading" }, "Loading instances…");
    const table = h("table", { class: "table", id: "instances-table", hidden: true },
        h("thead", {}, h("tr", {},
            h("th", { scope: "col", class: "col-name" }, "Name"),
            h("th", { scope: "col", class: "col-state" }, "State"),
            h("th", { scope: "col", class: "col-services" }, "Services"),
            h("th", { scope: "col", class: "col-created" }, "Created"),
            h("th", { scope: "col", class: "col-actions" }, h("span", { class: "visually-hidden" }, "Actions")))),
        tbody);
    const count = h("span", { class: "count muted", id: "instances-count" });

    replaceChildren(main,
        h("div", { class: "page-head" },
            h("div", {}, h("h1", {}, "Instances ", count),
                h("p", { class: "muted" }, "Sandboxed browsers running on this appliance.")),
        ),
        !isAdmin ? null : h("section", { class: "card create-card" },
            h("h2", {}, "New instance"),
            createForm,
            h("p", { class: "hint", id: "create-hint" }, NAME_HINT),
            createError),
        listError,
        actionError,
        h("section", { class: "card table-card" }, loading, empty, table),
    );

    const rows = new Map();      // id -> {tr, cells..., pending}
    let mutations = 0;           // bumped by every local change; stale poll answers are dropped
    let loaded = false;

    function render(instances) {
        instances = [...instances].sort((a, b) => a.id - b.id);
        const seen = new Set();
        let prev = null;
        for (const inst of instances) {
            seen.add(inst.id);
            let row = rows.get(inst.id);
            if (!row) {
                row = makeRow(inst);
                rows.set(inst.id, row);
            }
            updateRow(row, inst);
            // keep DOM order = id order without re-inserting rows that are already in place
            const want = prev ? prev.nextSibling : tbody.firstChild;
            if (want !== row.tr) tbody.insertBefore(row.tr, want);
            prev = row.tr;
        }
        for (const [id, row] of rows) {
            if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
        }
        loading.hidden = true;
        table.hidden = instances.length === 0;
        empty.hidden = instances.length !== 0;
        setText(count, instances.length ? String(instances.length) : "");
    }

    function makeRow(inst) {
        const link = h("a", { href: `/instances/${inst.id}`, class: "instance-link", dataset: { field: "name" } });
        const lastError = h("div", { class: "row-error", dataset: { field: "last_error" }, hidden: true });
        const badge = stateBadge(inst.state);
        const stateCell = h("td", { dataset: { field: "state" } }, badge);
        const chips = h("div", { class: "chips" });
        const created = h("td", { class: "muted nowrap", dataset: { field: "created_at" } });
        const btn = (action, label, cls) => h("button", {
            type: "button", class: `btn btn-sm ${cls}`, dataset: { action }, "aria-label": `${label} ${inst.name}`,
        }, label);
        const start = btn("start", "Start", "btn-secondary");
        const stop = btn("stop", "Stop", "btn-secondary");
        const del = isAdmin ? btn("delete", "Delete", "btn-danger-ghost") : null;
        const tr = h("tr", { dataset: { instanceName: inst.name, instanceId: String(inst.id) } },
            h("td", {}, link, lastError),
            stateCell,
            h("td", { dataset: { field: "services" } }, chips),
            created,
            h("td", { class: "col-actions" }, h("div", { class: "row-actions" }, start, stop, del)));
        const row = { tr, link, lastError, badge, chips, created, start, stop, del, pending: false, inst };
        start.addEventListener("click", () => act(row, "start"));
        stop.addEventListener("click", () => act(row, "stop"));
        if (del) del.addEventListener("click", () => remove(row));
        return row;
    }

    function updateRow(row, inst) {
        row.inst = inst;
        setText(row.link, inst.name);
        row.tr.dataset.instanceName = inst.name;
        row.tr.dataset.state = inst.state;
        updateStateBadge(row.badge, inst.state);
        updateServiceChips(row.chips, inst.services);
        setText(row.created, formatTime(inst.created_at));
        row.created.title = inst.created_at || "";
        setText(row.lastError, inst.last_error || "");
        row.lastError.hidden = !inst.last_error;
        updateButtons(row);
    }

    function updateButtons(row) {
        const allowed = allowedActions(row.inst.state);
        row.start.disabled = row.pending || !allowed.start;
        row.stop.disabled = row.pending || !allowed.stop;
        if (row.del) row.del.disabled = row.pending;
        row.tr.classList.toggle("is-pending", row.pending);
    }

    async function refresh() {
        const before = mutations;
        try {
            const res = await api.listInstances({ signal: ctx.signal });
            if (!ctx.alive || before !== mutations) return;   // a local change raced us; next poll
            showError(listError, "");
            render(res.instances || []);
            loaded = true;
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(listError, loaded
                ? `Could not refresh the list: ${e.message} Retrying…`
                : `Could not load instances: ${e.message} Retrying…`);
        }
    }

    async function act(row, action) {
        if (row.pending) return;
        row.pending = true;
        updateButtons(row);
        setActionError("");
        try {
            const inst = await api.instanceAction(row.inst.id, action, { signal: ctx.signal });
            if (!ctx.alive) return;
            mutations++;
            if (inst && inst.id !== undefined) updateRow(row, inst);
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            setActionError(`Could not ${action} ${row.inst.name}: ${e.message}`);
        } finally {
            row.pending = false;
            if (ctx.alive) updateButtons(row);
            poller.poke();
        }
    }

    async function remove(row) {
        if (row.pending) return;
        const name = row.inst.name;
        if (!window.confirm(`Delete instance "${name}"? Its browser profile and data are removed for good.`)) return;
        row.pending = true;
        updateButtons(row);
        setActionError("");
        try {
            await api.deleteInstance(row.inst.id, { signal: ctx.signal });
            if (!ctx.alive) return;
            mutations++;
            row.tr.remove();
            rows.delete(row.inst.id);
            render([...rows.values()].map((r) => r.inst));
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            setActionError(`Could not delete ${name}: ${e.message}`);
            row.pending = false;
            updateButtons(row);
        } finally {
            poller.poke();
        }
    }

    createForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const name = nameInput.value.trim();
        const problem = nameProblem(name);
        if (problem) {
            showError(createError, problem);
            nameInput.setAttribute("aria-invalid", "true");
            nameInput.focus();
            return;
        }
        nameInput.removeAttribute("aria-invalid");
        showError(createError, "");
        createBtn.disabled = true;
        nameInput.disabled = true;
        try {
            const inst = await api.createInstance(name, { signal: ctx.signal });
            if (!ctx.alive) return;
            mutations++;
            nameInput.value = "";
            if (inst && inst.id !== undefined && !rows.has(inst.id)) {
                render([...[...rows.values()].map((r) => r.inst), inst]);
            }
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(createError, e.message);
            nameInput.setAttribute("aria-invalid", "true");
        } finally {
            createBtn.disabled = false;
            nameInput.disabled = false;
            if (ctx.alive) nameInput.focus();
            poller.poke();
        }
    });
    nameInput.addEventListener("input", () => {
        if (!createError.hidden && !nameProblem(nameInput.value.trim())) {
            showError(createError, "");
            nameInput.removeAttribute("aria-invalid");
        }
    });

    const poller = new Poller(refresh, POLL_MS, ctx.signal).start();
}
