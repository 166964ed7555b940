// The instances one user is assigned to, as checkboxes, on the Users page. The API keeps
// assignments per instance (GET /instances/{id}/users), so the panel asks every instance:
// an appliance holds a handful of them, and the panel loads only when opened.
import { api } from "../api.js";
import { h, replaceChildren, showError } from "../dom.js";

export class AssignmentsPanel {
    constructor(user, signal) {
        this.user = user;
        this.signal = signal;
        this.list = h("div", { class: "assignments-list" }, h("span", { class: "muted" }, "Loading instances…"));
        this.error = h("p", { class: "error", role: "alert", hidden: true });
        this.element = h("div", { class: "assignments", dataset: { assignmentsFor: user.username } },
            h("p", { class: "detail-title" }, `Instances ${user.username} is assigned to`),
            this.list,
            this.error);
    }

    async load() {
        let entries;
        try {
            const { instances = [] } = await api.listInstances({ signal: this.signal });
            entries = await Promise.all(instances.map(async (inst) => {
                const { users = [] } = await api.instanceUsers(inst.id, { signal: this.signal });
                return { inst, assigned: users.some((u) => u.id === this.user.id) };
            }));
        } catch (e) {
            if (e.aborted || this.signal.aborted || e.status === 401) return;
            replaceChildren(this.list);
            showError(this.error, `Could not load the assignments: ${e.message}`);
            return;
        }
        if (this.signal.aborted) return;
        entries.sort((a, b) => a.inst.name.localeCompare(b.inst.name));
        replaceChildren(this.list, entries.length
            ? entries.map(({ inst, assigned }) => this.checkbox(inst, assigned))
            : h("span", { class: "muted" }, "There are no instances yet."));
        this.element.dataset.loaded = "true";
    }

    checkbox(inst, assigned) {
        const box = h("input", {
            type: "checkbox", checked: assigned,
            dataset: { instanceId: String(inst.id), instanceName: inst.name, saved: String(assigned) },
        });
        box.addEventListener("change", async () => {
            const want = box.checked;
            box.disabled = true;
            showError(this.error, "");
            try {
                if (want) await api.assign(inst.id, this.user.id, { signal: this.signal });
                else await api.unassign(inst.id, this.user.id, { signal: this.signal });
                box.dataset.saved = String(want);   // what the server holds now
            } catch (e) {
                if (e.aborted || this.signal.aborted || e.status === 401) return;
                box.checked = !want;
                showError(this.error, `Could not ${want ? "assign" : "unassign"} ${inst.name}: ${e.message}`);
            } finally {
                box.disabled = false;
            }
        });
        return h("label", { class: "check" }, box, h("span", {}, inst.name));
    }
}
