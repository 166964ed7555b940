// /login: sign in with username and password.
import { api } from "../api.js";
import { h, showError } from "../dom.js";
import { authFrame, busy, field } from "./auth-layout.js";

export async function loginPage(root, ctx) {
    document.title = "Sign in · Claworc";
    const status = await api.setupStatus({ signal: ctx.signal });
    if (!ctx.alive) return;
    if (status.required) {
        ctx.navigate("/setup", { replace: true });
        return;
    }
    // Already signed in (e.g. a bookmarked /login)? Go straight on.
    if (!ctx.session.user) {
        try {
            ctx.session.user = (await api.me({ signal: ctx.signal })).user;
        } catch (e) {
            if (e.aborted) return;
        }
        if (!ctx.alive) return;
    }
    if (ctx.session.user) {
        ctx.navigate(ctx.nextPath(), { replace: true });
        return;
    }

    const username = h("input", {
        id: "login-username", name: "username", type: "text", required: true,
        autocomplete: "username", autocapitalize: "off", spellcheck: "false",
    });
    const password = h("input", { id: "login-password", name: "password", type: "password", required: true, autocomplete: "current-password" });
    const error = h("p", { class: "error", role: "alert", id: "login-error", hidden: true });
    const submit = h("button", { id: "login-submit", class: "btn btn-primary btn-block", type: "submit" }, "Sign in");
    const form = h("form", { class: "form", novalidate: true },
        field("Username", username),
        field("Password", password),
        error,
        submit);

    form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const name = username.value.trim();
        if (!name || !password.value) {
            showError(error, "Enter your username and password.");
            (name ? password : username).focus();
            return;
        }
        showError(error, "");
        try {
            const res = await busy(form, submit, "Signing in…", () =>
                api.login(name, password.value, { signal: ctx.signal }));
            if (!ctx.alive) return;
            ctx.session.user = res.user;
            ctx.navigate(ctx.nextPath(), { replace: true });
        } catch (e) {
            if (e.aborted || !ctx.alive) return;
            showError(error, e.message);
            password.select();
            password.focus();
        }
    });

    authFrame(root,
        h("h1", {}, "Sign in"),
        h("p", { class: "lead" }, "Sign in to manage your Claworc instances."),
        form);
    username.focus();
}
