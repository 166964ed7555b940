// /agent (admins): what every instance's agent runs on. The installed OpenClaw bundles (upload,
// choose the active one, delete), the LLM providers (from a preset or by hand; a key can be
// set or replaced but is never shown again, only its last four characters), and the default
// model with its fallbacks (per-instance overrides live in each instance's settings).
import { api, request } from "../api.js";
import { h, replaceChildren, setText, showError } from "../dom.js";
import { agentOutcome } from "./agent-status.js";

const APIS = [["openai-completions", "OpenAI chat completions"], ["openai-responses", "OpenAI responses"],
    ["anthropic-messages", "Anthropic messages"]];

export async function agentPage(root, ctx) {
    document.title = "Agent · Claworc";
    const main = ctx.shell();
    main.append(h("h1", {}, "Agent"),
        bundlesSection(ctx), providersSection(ctx), modelSection(ctx));
}

function section(id, title, intro, ...body) {
    return h("section", { class: "card account-section", id }, h("h2", {}, title), h("p", { class: "muted" }, intro), ...body);
}

// ---- OpenClaw bundles ---------------------------------------------------------------------

function bundlesSection(ctx) {
    const error = h("p", { class: "error", role: "alert", id: "bundles-error", hidden: true });
    const list = h("ul", { class: "plain-list", id: "bundles-list" });
    const note = h("p", { class: "muted", id: "bundles-note" });
    const file = h("input", { type: "file", id: "bundle-file", accept: ".tar.gz,.tgz,application/gzip" });
    const progress = h("progress", { id: "bundle-progress", max: 100, value: 0, hidden: true });
    const upload = h("button", { type: "submit", class: "btn btn-primary", id: "bundle-upload" }, "Install");

    async function refresh() {
        try {
            const { bundles } = await request("GET", "/agent/bundles", undefined, { signal: ctx.signal });
            replaceChildren(list, bundles.length ? bundles.map(row) : [h("li", { class: "muted" }, "No OpenClaw installed yet.")]);
        } catch (e) { if (!e.aborted) showError(error, e.message); }
    }

    function row(b) {
        const activate = h("button", { type: "button", class: "btn btn-sm", hidden: b.active }, "Make active");
        const remove = h("button", { type: "button", class: "btn btn-sm btn-danger", hidden: b.active }, "Delete");
        activate.onclick = () => act(async () => {
            const res = await request("PUT", "/agent/active", { version: b.version });
            setText(note, res.note || "");
        });
        remove.onclick = () => { if (confirm(`Delete OpenClaw ${b.version}?`)) act(() => request("DELETE", `/agent/bundles/${encodeURIComponent(b.version)}`)); };
        return h("li", { class: "bundle-row", "data-version": b.version },
            h("strong", {}, b.version), b.active ? h("span", { class: "badge state-running" }, "active") : null,
            b.node ? h("span", { class: "muted" }, " with its own Node.js") : null, " ", activate, " ", remove);
    }

    async function act(call) {
        showError(error, "");
        try { await call(); } catch (e) { showError(error, e.message); }
        await refresh();
    }

    const form = h("form", { id: "bundle-form", class: "create-form" }, file, upload, progress);
    form.onsubmit = (ev) => {
        ev.preventDefault();
        const chosen = file.files && file.files[0];
        if (!chosen) return showError(error, "Choose a .tar.gz bundle first.");
        showError(error, "");
        // XMLHttpRequest, not fetch: it reports upload progress for a file of hundreds of MiB.
        const xhr = new XMLHttpRequest();
        xhr.open("POST", "/api/v1/agent/bundles");
        xhr.setRequestHeader("Content-Type", "application/gzip");
        xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = Math.round(100 * e.loaded / e.total); };
        xhr.onloadend = () => {
            progress.hidden = true;
            upload.disabled = false;
            let message = "";
            if (xhr.status !== 201) {
                try { message = JSON.parse(xhr.responseText).error.message; } catch { message = `The upload failed (${xhr.status || "network"}).`; }
            }
            showError(error, message);
            if (!message) form.reset();
            refresh();
        };
        progress.value = 0;
        progress.hidden = false;
        upload.disabled = true;
        xhr.send(chosen);
    };
    refresh();
    return section("agent-bundles", "OpenClaw",
        "A bundle is an npm install prefix made into a .tar.gz (tar -C PREFIX -czf openclaw.tar.gz .). " +
        "A running instance keeps the version it started with and mounts the active one at its next start.", error, note, list, form);
}

// ---- providers ----------------------------------------------------------------------------

function providersSection(ctx) {
    const error = h("p", { class: "error", role: "alert", id: "providers-error", hidden: true });
    const list = h("ul", { class: "plain-list", id: "providers-list" });
    const preset = h("select", { id: "provider-preset", "aria-label": "Start from" }, h("option", { value: "" }, "Start from a preset…"));
    const name = h("input", { id: "provider-name", type: "text", placeholder: "name", required: true, "aria-label": "Name", autocomplete: "off" });
    const apiSelect = h("select", { id: "provider-api", "aria-label": "API" }, APIS.map(([v, l]) => h("option", { value: v }, l)));
    const baseURL = h("input", { id: "provider-base-url", type: "url", placeholder: "https://…", required: true, "aria-label": "Base URL" });
    const models = h("input", { id: "provider-models", type: "text", placeholder: "model ids, comma separated", "aria-label": "Models" });
    const key = h("input", { id: "provider-key", type: "password", placeholder: "API key (empty: keep the current one)",
        autocomplete: "new-password", "aria-label": "API key" });
    const save = h("button", { type: "submit", class: "btn btn-primary", id: "provider-save" }, "Save");
    let presets = [];

    preset.onchange = () => {
        const p = presets.find((x) => x.name === preset.value);
        if (!p) return;
        name.value = p.name;
        apiSelect.value = p.api;
        baseURL.value = p.base_url;
        models.value = p.models.join(", ");
    };

    async function refresh() {
        try {
            const data = await request("GET", "/providers", undefined, { signal: ctx.signal });
            presets = data.presets;
            replaceChildren(preset, [h("option", { value: "" }, "Start from a preset…"), ...presets.map((p) => h("option", { value: p.name }, p.name))]);
            replaceChildren(list, data.providers.length ? data.providers.map(row) : [h("li", { class: "muted" }, "No provider yet.")]);
        } catch (e) { if (!e.aborted) showError(error, e.message); }
    }

    function row(p) {
        const edit = h("button", { type: "button", class: "btn btn-sm" }, "Edit");
        const remove = h("button", { type: "button", class: "btn btn-sm btn-danger" }, "Delete");
        edit.onclick = () => {
            name.value = p.name;
            apiSelect.value = p.api;
            baseURL.value = p.base_url;
            models.value = p.models.join(", ");
            key.value = "";
            name.focus();
        };
        remove.onclick = async () => {
            if (!confirm(`Delete the provider ${p.name}?`)) return;
            const path = `/providers/${encodeURIComponent(p.name)}`;
            try {
                await request("DELETE", path);
            } catch (e) {
                // Model settings still name it: say which, and delete only if asked again.
                if (e.code !== "provider_in_use") showError(error, e.message);
                else if (confirm(`${e.message}\n\nDelete it anyway?`)) {
                    try { await request("DELETE", `${path}?force=true`); } catch (e2) { showError(error, e2.message); }
                }
            }
            refresh();
        };
        const keyText = p.has_key ? (p.api_key_last4 ? `key …${p.api_key_last4}` : "key set") : "no key";
        return h("li", { class: "provider-row", "data-name": p.name },
            h("strong", {}, p.name), ` ${p.api} · ${p.base_url} · ${p.models.join(", ")} · `,
            h("span", { class: "provider-key" }, keyText), " ", edit, " ", remove);
    }

    const form = h("form", { id: "provider-form", class: "create-form provider-form", novalidate: true },
        preset, name, apiSelect, baseURL, models, key, save);
    form.onsubmit = async (ev) => {
        ev.preventDefault();
        showError(error, "");
        const body = { api: apiSelect.value, base_url: baseURL.value.trim(),
            models: models.value.split(",").map((m) => m.trim()).filter(Boolean) };
        if (key.value) body.api_key = key.value;
        try {
            await request("PUT", `/providers/${encodeURIComponent(name.value.trim())}`, body);
            key.value = "";   // write-only: never kept in the page
            refresh();
        } catch (e) { showError(error, e.message); }
    };
    refresh();
    return section("agent-providers", "Model providers",
        "Keys are stored encrypted and never leave the appliance's daemon: instances reach providers through it.",
        error, list, form);
}

// ---- default model --------------------------------------------------------------------------

function modelSection(ctx) {
    const error = h("p", { class: "error", role: "alert", id: "model-error", hidden: true });
    const saved = h("span", { class: "muted", id: "model-saved" });
    const primary = h("input", { id: "model-primary", type: "text", placeholder: "provider/model", "aria-label": "Default model" });
    const fallbacks = h("input", { id: "model-fallbacks", type: "text", placeholder: "fallbacks: provider/model, …", "aria-label": "Fallbacks" });
    const form = h("form", { id: "model-form", class: "create-form", novalidate: true },
        primary, fallbacks, h("button", { type: "submit", class: "btn btn-primary" }, "Save"), saved);
    request("GET", "/settings/instance-defaults", undefined, { signal: ctx.signal }).then(({ settings }) => {
        primary.value = settings.model || "";
        fallbacks.value = (settings.fallbacks || []).join(", ");
    }).catch((e) => { if (!e.aborted) showError(error, e.message); });
    form.onsubmit = async (ev) => {
        ev.preventDefault();
        showError(error, "");
        setText(saved, "");
        const body = { fallbacks: fallbacks.value.split(",").map((m) => m.trim()).filter(Boolean) };
        if (primary.value.trim()) body.model = primary.value.trim();
        try {
            const res = await request("PUT", "/settings/instance-defaults", body);
            setText(saved, "Saved." + agentOutcome(res.agents));
        } catch (e) { showError(error, e.message); }
    };
    return section("agent-model", "Default model",
        "Used by every instance that does not choose its own (in its settings).", error, form);
}
