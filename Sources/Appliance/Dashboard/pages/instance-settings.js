// The Settings tab of an instance: every setting in effect, and whether it is the instance's
// own (an override) or the appliance-wide default; admins change the overrides and the
// instance's own provider keys here. GET/PUT /api/v1/instances/<id>/settings.
import { request } from "../api.js";
import { h, replaceChildren, setText, showError } from "../dom.js";
import { agentOutcome } from "./agent-status.js";

// key, label, kind: text | list (comma separated) | int | num | bool
const FIELDS = [
    ["model", "Model (provider/model)", "text"],
    ["fallbacks", "Fallback models", "list"],
    ["monthly_token_budget", "Monthly token budget", "int"],
    ["chat_shared", "One chat shared by everyone", "bool"],
    ["memory_max_mib", "Memory limit (MiB)", "int"],
    ["memory_high_mib", "Memory throttle (MiB)", "int"],
    ["cpus", "CPUs", "num"],
    ["pids_max", "Processes", "int"],
    ["shm_mib", "/dev/shm (MiB)", "int"],
    ["tmp_mib", "/tmp (MiB)", "int"],
    ["io_read_mib_per_s", "Disk reads (MiB/s, 0: unlimited)", "int"],
    ["io_write_mib_per_s", "Disk writes (MiB/s, 0: unlimited)", "int"],
    ["network", "Network (egress or none)", "text"],
    ["egress_allow", "Also reachable (addresses, CIDRs)", "list"],
];

function shown(value, kind) {
    if (value === null || value === undefined) return kind === "int" && value === null ? "unlimited" : "—";
    if (kind === "list") return value.length ? value.join(", ") : "none";
    if (kind === "bool") return value ? "yes" : "no";
    return String(value);
}

/** The input's text as the API's value; undefined: no override. */
function parsed(text, kind) {
    const raw = text.trim();
    if (raw === "") return undefined;
    if (kind === "list") return raw.split(",").map((s) => s.trim()).filter(Boolean);
    if (kind === "int" || kind === "num") return Number(raw);
    return raw;
}

export class InstanceSettingsPanel {
    constructor(id, ctx) {
        this.id = id;
        this.signal = ctx.signal;
        this.admin = ctx.session && ctx.session.user && ctx.session.user.role === "admin";
        this.rows = h("tbody", { id: "settings-rows" });
        this.keys = h("tbody", { id: "settings-keys" });
        this.error = h("p", { class: "error", role: "alert", id: "settings-error", hidden: true });
        this.saved = h("span", { class: "muted", id: "settings-saved", role: "status" });
        this.inputs = new Map();
        this.keyInputs = new Map();
        const save = h("button", { type: "submit", class: "btn btn-primary", id: "settings-save", hidden: !this.admin }, "Save");
        this.element = h("form", { class: "settings-panel", id: "settings-panel", "aria-label": "Settings", novalidate: true,
            onsubmit: (ev) => { ev.preventDefault(); this.save(); } },
            h("p", { class: "muted" }, this.admin
                ? "Leave a field empty to use the appliance's default (Agent page for the model; defaults API for the rest)."
                : "Only admins change an instance's settings."),
            h("table", { class: "table settings-table" },
                h("thead", {}, h("tr", {}, h("th", {}, "Setting"), h("th", {}, "In effect"), h("th", {}, "From"), h("th", {}, "This instance's value"))),
                this.rows),
            h("h3", {}, "Provider keys"),
            h("table", { class: "table settings-table" },
                h("thead", {}, h("tr", {}, h("th", {}, "Provider"), h("th", {}, "Key used"), h("th", {}, "Own key for this instance"))),
                this.keys),
            this.error, h("div", { class: "actions" }, save, this.saved));
    }

    async load() {
        try {
            const settings = await request("GET", `/instances/${this.id}/settings`, undefined, { signal: this.signal });
            const providers = this.admin
                ? (await request("GET", "/providers", undefined, { signal: this.signal })).providers : [];
            this.render(settings, providers);
            showError(this.error, "");
        } catch (e) {
            if (!e.aborted) showError(this.error, e.message);
        }
    }

    render({ overrides, effective, provider_keys: own }, providers) {
        this.inputs.clear();
        replaceChildren(this.rows, FIELDS.map(([key, label, kind]) => {
            const mine = overrides[key] !== null && overrides[key] !== undefined;
            let input;
            if (kind === "bool") {
                input = h("select", { id: `setting-${key}`, disabled: !this.admin, "aria-label": label },
                    h("option", { value: "" }, "default"), h("option", { value: "true" }, "yes"), h("option", { value: "false" }, "no"));
                input.value = mine ? String(overrides[key]) : "";
            } else {
                input = h("input", { id: `setting-${key}`, type: "text", disabled: !this.admin, "aria-label": label,
                    placeholder: "default", value: mine ? (kind === "list" ? overrides[key].join(", ") : String(overrides[key])) : "" });
            }
            this.inputs.set(key, [input, kind]);
            return h("tr", { dataset: { setting: key, source: mine ? "instance" : "default" } },
                h("td", {}, label),
                h("td", { class: "setting-effective" }, shown(effective[key], kind)),
                h("td", {}, h("span", { class: `chip ${mine ? "chip-own" : ""}` }, mine ? "this instance" : "default")),
                h("td", {}, input));
        }));
        this.keyInputs.clear();
        const byName = new Map((own || []).map((k) => [k.provider, k]));
        replaceChildren(this.keys, providers.map((p) => {
            const mine = byName.get(p.name);
            const input = h("input", { type: "password", id: `setting-key-${p.name}`, autocomplete: "off",
                placeholder: mine ? "replace this instance's key" : "set a key for this instance only", "aria-label": `${p.name} key` });
            const reset = mine ? h("button", { type: "button", class: "btn btn-sm btn-secondary", id: `setting-key-reset-${p.name}`,
                onclick: () => this.save({ [p.name]: null }) }, "Use the provider's") : null;
            this.keyInputs.set(p.name, input);
            return h("tr", { dataset: { provider: p.name, source: mine ? "instance" : "provider" } },
                h("td", {}, p.name),
                h("td", {}, mine ? `this instance's (…${mine.api_key_last4 || ""})` : "the provider's"),
                h("td", {}, input, reset));
        }));
        if (!providers.length) this.keys.appendChild(h("tr", {}, h("td", { colspan: 3, class: "muted" },
            this.admin ? "No providers yet (Agent page)." : "Keys are managed by admins.")));
    }

    async save(keyChanges) {
        const body = {};
        for (const [key, [input, kind]] of this.inputs) {
            const value = kind === "bool" ? (input.value === "" ? undefined : input.value === "true") : parsed(input.value, kind);
            if (value !== undefined) body[key] = value;
        }
        const keys = { ...keyChanges };
        for (const [name, input] of this.keyInputs) if (input.value) keys[name] = input.value;
        if (Object.keys(keys).length) body.provider_keys = keys;
        setText(this.saved, "");
        try {
            const res = await request("PUT", `/instances/${this.id}/settings`, body);
            for (const input of this.keyInputs.values()) input.value = "";   // write-only
            setText(this.saved, "Saved." + agentOutcome(res.agent));
            await this.load();
        } catch (e) {
            showError(this.error, e.message);
        }
    }
}
