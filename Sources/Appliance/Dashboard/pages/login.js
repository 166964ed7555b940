// /login: sign in with username and password, or with a passkey alone.
import { api } from "../api.js";
import { h, showError } from "../dom.js";
import { getPasskey, passkeyErrorMessage, passkeysSupported } from "../webauthn.js";
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

    // Discoverable credentials: the authenticator offers the passkeys it holds for this
    // appliance, so no username is asked for.
    const passkeyBtn = h("button", { id: "login-passkey", class: "btn btn-secondary btn-block", type: "button" },
        "Sign in with a passkey");
    passkeyBtn.addEventListener("click", async () => {
        showError(error, "");
        const label = passkeyBtn.textContent;
        passkeyBtn.disabled = submit.disabled = true;
        passkeyBtn.textContent = "Waiting for your passkey…";
        try {
            const options = await api.passkeyLoginOptions({ signal: ctx.signal });
            let credential;
            try {
                credential = await getPasskey(options.publicKey, ctx.signal);
            } catch (e) {
                if (!ctx.alive) return;
                throw new Error(passkeyErrorMessage(e));
            }
            const res = await api.passkeyLogin(credential, { signal: ctx.signal });
            if (!ctx.alive) return;
            ctx.session.user = res.user;
            ctx.navigate(ctx.nextPath(), { replace: true });
        } catch (e) {
            if (e.aborted || !ctx.alive) return;
            showError(error, e.message);
        } finally {
            passkeyBtn.disabled = submit.disabled = false;
            passkeyBtn.textContent = label;
        }
    });

    authFrame(root,
        h("h1", {}, "Sign in"),
        h("p", { class: "lead" }, "Sign in to manage your Claworc instances."),
        form,
        passkeysSupported() ? h("div", { class: "auth-alt" }, h("p", { class: "auth-or muted" }, "or"), passkeyBtn) : null);
    username.focus();
}
