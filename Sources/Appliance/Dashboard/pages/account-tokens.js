// Account page: API tokens (Authorization: Bearer) for scripts acting as this user. The
// server stores only a hash, so a new token's secret is shown here once, in a box that goes
// away for good when dismissed or when the page is left.
import { api } from "../api.js";
import { formatTime, h, replaceChildren, setText, showError } from "../dom.js";

export function tokensSection(ctx) {
    const name = h("input", {
        id: "token-name", type: "text", required: true, maxlength: 100, placeholder: "e.g. backup script",
        autocomplete: "off", "aria-label": "Token name",
    });
    const days = h("input", {
        id: "token-days", type: "number", min: 1, step: 1, placeholder: "no expiry",
        "aria-label": "Expires after days (optional)", class: "input-days",
    });
    const createBtn = h("button", { id: "token-create", class: "btn btn-primary", type: "submit" }, "Create token");
    const createError = h("p", { class: "error", role: "alert", id: "token-error", hidden: true });
    const form = h("form", { class: "create-form tokens-form", id: "token-form", novalidate: true },
        name, days, h("span", { class: "muted nowrap" }, "days"), createBtn);

    // ---- the new token, shown once
    const secret = h("input", { id: "token-new-value", type: "text", readonly: true, class: "mono", "aria-label": "New token" });
    const copyBtn = h("button", { type: "button", class: "btn btn-secondary", id: "token-copy" }, "Copy");
    const copied = h("span", { class: "muted", role: "status", id: "token-copied" });
    const newName = h("strong", {});
    const reveal = h("div", { class: "callout callout-warn token-reveal", id: "token-new", hidden: true },
        h("p", {}, "Your new token ", newName, ". ",
            h("strong", {}, "Copy it now: it will not be shown again.")),
        h("div", { class: "copy-row" }, secret, copyBtn),
        h("div", { class: "copy-row" }, copied, h("div", { class: "spacer" }),
            h("button", { type: "button", class: "btn btn-sm btn-ghost", id: "token-dismiss", onclick: hideSecret }, "Done")));

    function hideSecret() {
        secret.value = "";
        setText(copied, "");
        reveal.hidden = true;
    }

    copyBtn.addEventListener("click", async () => {
        secret.select();
        try {
            await navigator.clipboard.writeText(secret.value);
            setText(copied, "Copied to the clipboard.");
        } catch {
            // No clipboard API (plain HTTP on the LAN is not a secure context): the text is selected.
            setText(copied, document.execCommand && document.execCommand("copy")
                ? "Copied to the clipboard." : "Selected: press Ctrl+C to copy.");
        }
    });

    // ---- the list
    const tbody = h("tbody", { id: "token-rows" });
    const listError = h("p", { class: "error", role: "alert", id: "tokens-list-error", hidden: true });
    const empty = h("p", { class: "muted empty-inline", id: "tokens-empty", hidden: true }, "No API tokens.");
    const table = h("table", { class: "table", id: "tokens-table", hidden: true },
        h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Name"),
            h("th", { scope: "col", class: "col-created" }, "Created"),
            h("th", { scope: "col", class: "col-created" }, "Expires"),
            h("th", { scope: "col", class: "col-created" }, "Last used"),
            h("th", { scope: "col", class: "col-actions" }, h("span", { class: "visually-hidden" }, "Actions")))),
        tbody);

    const time = (iso, none) => h("td", { class: "muted nowrap", title: iso || "" }, iso ? formatTime(iso) : none);

    function render(tokens) {
        replaceChildren(tbody, tokens.map((t) => h("tr", { dataset: { tokenId: String(t.id), tokenName: t.name } },
            h("td", { class: "token-name" }, t.name),
            time(t.created_at, ""), time(t.expires_at, "never"), time(t.last_used_at, "never"),
            h("td", { class: "col-actions" }, h("button", {
                type: "button", class: "btn btn-sm btn-danger-ghost", dataset: { action: "revoke" },
                "aria-label": `Revoke ${t.name}`, onclick: () => revoke(t),
            }, "Revoke")))));
        table.hidden = tokens.length === 0;
        empty.hidden = tokens.length !== 0;
    }

    async function load() {
        try {
            const res = await api.listTokens({ signal: ctx.signal });
            if (!ctx.alive) return;
            showError(listError, "");
            render(res.tokens || []);
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(listError, `Could not load your tokens: ${e.message}`);
        }
    }

    async function revoke(token) {
        if (!window.confirm(`Revoke the token "${token.name}"? Scripts using it stop working at once.`)) return;
        showError(listError, "");
        try {
            await api.revokeToken(token.id, { signal: ctx.signal });
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            if (e.status !== 404) showError(listError, `Could not revoke ${token.name}: ${e.message}`);
        }
        if (ctx.alive) await load();
    }

    form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const label = name.value.trim();
        const rawDays = days.value.trim();
        const expires = rawDays ? Number(rawDays) : undefined;
        let problem = "";
        if (!label) problem = "Give the token a name, so you know later what uses it.";
        else if (rawDays && !(Number.isInteger(expires) && expires > 0)) problem = "Days until it expires: a whole number, or empty for never.";
        if (problem) { showError(createError, problem); return; }
        showError(createError, "");
        hideSecret();
        const controls = [name, days, createBtn];
        controls.forEach((c) => { c.disabled = true; });
        try {
            const token = await api.createToken(label, expires, { signal: ctx.signal });
            if (!ctx.alive) return;
            name.value = days.value = "";
            setText(newName, `“${token.name}”`);
            secret.value = token.token;
            reveal.hidden = false;
            secret.focus();
            secret.select();
            await load();
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(createError, e.message);
        } finally {
            controls.forEach((c) => { c.disabled = false; });
        }
    });

    load();
    return h("section", { class: "card section-card", id: "account-tokens" },
        h("h2", {}, "API tokens"),
        h("p", { class: "muted section-lead" }, "For scripts: send ", h("code", {}, "Authorization: Bearer <token>"),
            ". A token acts as you, with your role, until it expires or is revoked."),
        form, createError, reveal, listError,
        h("div", { class: "table-scroll" }, table), empty);
}
