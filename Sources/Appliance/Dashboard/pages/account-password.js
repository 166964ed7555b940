// Account page: change one's own password. The server ends every other session of the user
// and answers with a fresh cookie for this one.
import { api } from "../api.js";
import { h, setText, showError } from "../dom.js";
import { field } from "./auth-layout.js";

export function passwordSection(ctx, page) {
    const input = (id, autocomplete) => h("input", { id, type: "password", required: true, autocomplete });
    const current = input("password-current", "current-password");
    const next = input("password-new", "new-password");
    const repeat = input("password-repeat", "new-password");
    const submit = h("button", { id: "password-submit", class: "btn btn-primary", type: "submit" }, "Change password");
    const error = h("p", { class: "error", role: "alert", id: "password-error", hidden: true });
    const done = h("p", { class: "ok-note", role: "status", id: "password-done", hidden: true });
    const form = h("form", { class: "form narrow-form", id: "password-form", novalidate: true },
        // Lets password managers tie the new password to this account.
        h("input", { type: "text", autocomplete: "username", value: (ctx.session.user || {}).username || "", hidden: true, readonly: true }),
        field("Current password", current),
        field("New password", next, "At least 8 characters."),
        field("Repeat the new password", repeat),
        error, done,
        h("div", {}, submit));

    form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        setText(done, "");
        done.hidden = true;
        let problem = "";
        if (!current.value) problem = "Enter your current password.";
        else if (!next.value) problem = "Enter a new password.";
        else if (next.value !== repeat.value) problem = "The two new passwords do not match.";
        if (problem) { showError(error, problem); return; }
        showError(error, "");
        const controls = [current, next, repeat, submit];
        controls.forEach((c) => { c.disabled = true; });
        try {
            await api.changePassword(current.value, next.value, { signal: ctx.signal });
            if (!ctx.alive) return;
            current.value = next.value = repeat.value = "";
            setText(done, "Password changed. Your other sessions have been signed out.");
            done.hidden = false;
            page.dispatchEvent(new Event("sessions-changed"));
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(error, e.message);
            (e.code === "wrong_password" ? current : next).focus();
        } finally {
            controls.forEach((c) => { c.disabled = false; });
        }
    });

    return h("section", { class: "card section-card", id: "account-password" },
        h("h2", {}, "Password"),
        form);
}
