// Account page: the sessions signed in as this user (browsers, by client address), this one
// marked; any other can be signed out, one by one or all at once.
import { api } from "../api.js";
import { formatTime, h, replaceChildren, showError } from "../dom.js";

export function sessionsSection(ctx, page) {
    const tbody = h("tbody", { id: "session-rows" });
    const error = h("p", { class: "error", role: "alert", id: "sessions-error", hidden: true });
    const revokeOthers = h("button", { type: "button", class: "btn btn-sm btn-secondary", id: "sessions-revoke-others", hidden: true },
        "Sign out all other sessions");
    const table = h("table", { class: "table", id: "sessions-table" },
        h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Client"),
            h("th", { scope: "col", class: "col-created" }, "Signed in"),
            h("th", { scope: "col", class: "col-created" }, "Last seen"),
            h("th", { scope: "col", class: "col-created" }, "Expires"),
            h("th", { scope: "col", class: "col-actions" }, h("span", { class: "visually-hidden" }, "Actions")))),
        tbody);
    let sessions = [];

    const time = (iso) => h("td", { class: "muted nowrap", title: iso || "" }, formatTime(iso));

    function render() {
        replaceChildren(tbody, sessions.map((s) => {
            const revoke = s.current ? null : h("button", {
                type: "button", class: "btn btn-sm btn-danger-ghost", dataset: { action: "revoke" },
                onclick: () => revokeAll([s]),
            }, "Sign out");
            return h("tr", { dataset: { sessionId: s.id, current: String(!!s.current) } },
                h("td", {}, h("span", { class: "mono" }, s.client || "unknown"), " ",
                    s.current ? h("span", { class: "tag tag-accent" }, "this session") : null),
                time(s.created_at), time(s.last_seen_at), time(s.expires_at),
                h("td", { class: "col-actions" }, revoke));
        }));
        revokeOthers.hidden = !sessions.some((s) => !s.current);
    }

    async function load() {
        try {
            const res = await api.listSessions({ signal: ctx.signal });
            if (!ctx.alive) return;
            sessions = res.sessions || [];
            showError(error, "");
            render();
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(error, `Could not load your sessions: ${e.message}`);
        }
    }

    async function revokeAll(list) {
        showError(error, "");
        revokeOthers.disabled = true;
        try {
            for (const s of list) {
                try {
                    await api.revokeSession(s.id, { signal: ctx.signal });
                } catch (e) {
                    if (e.status !== 404) throw e;   // already gone: expired or signed out meanwhile
                }
            }
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(error, `Could not sign the session out: ${e.message}`);
        } finally {
            revokeOthers.disabled = false;
        }
        if (ctx.alive) await load();
    }

    revokeOthers.addEventListener("click", () => revokeAll(sessions.filter((s) => !s.current)));
    page.addEventListener("sessions-changed", () => load());
    load();

    return h("section", { class: "card section-card", id: "account-sessions" },
        h("div", { class: "section-head" }, h("h2", {}, "Sessions"), h("div", { class: "spacer" }), revokeOthers),
        h("p", { class: "muted section-lead" }, "Where you are signed in. Signing a session out ends it at once."),
        error,
        h("div", { class: "table-scroll" }, table));
}
