// /setup: first-run page that creates the admin account with the one-time setup code.
import { api } from "../api.js";
import { h, showError } from "../dom.js";
import { authFrame, busy, field } from "./auth-layout.js";

export async function setupPage(root, ctx) {
    document.title = "Set up · Claworc";
    const status = await api.setupStatus({ signal: ctx.signal });
    if (!ctx.alive) return;
    if (!status.required) {
        ctx.navigate(ctx.session.user ? "/" : "/login", { replace: true });
        return;
    }

    const code = h("input", {
        id: "setup-code", name: "code", type: "text", required: true, autocomplete: "one-time-code",
        spellcheck: "false", autocapitalize: "off", class: "mono", autofocus: true,
    });
    const username = h("input", {
        id: "setup-username", name: "username", type: "text", required: true,
        autocomplete: "username", autocapitalize: "off", spellcheck: "false", placeholder: "admin",
    });
    const password = h("input", { id: "setup-password", name: "password", type: "password", required: true, autocomplete: "new-password" });
    const password2 = h("input", { id: "setup-password2", name: "password2", type: "password", required: true, autocomplete: "new-password" });
    const error = h("p", { class: "error", role: "alert", id: "setup-error", hidden: true });
    const submit = h("button", { id: "setup-submit", class: "btn btn-primary btn-block", type: "submit" }, "Create admin account");

    const form = h("form", { class: "form", novalidate: true, autocomplete: "on" },
        field("Setup code", code),
        field("Admin username", username),
        field("Password", password),
        field("Confirm password", password2),
        error,
        submit);

    form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const values = {
            code: code.value.trim(),
            username: username.value.trim(),
            password: password.value,
        };
        let problem = "";
        if (!values.code) problem = "Enter the setup code.";
        else if (!values.username) problem = "Choose a username for the admin account.";
        else if (!values.password) problem = "Choose a password.";
        else if (values.password !== password2.value) problem = "The two passwords do not match.";
        if (problem) { showError(error, problem); return; }
        showError(error, "");

        try {
            const res = await busy(form, submit, "Creating account…", () =>
                api.setup(values.code, values.username, values.password, { signal: ctx.signal }));
            if (!ctx.alive) return;
            ctx.session.user = res.user;
            ctx.navigate("/", { replace: true });
        } catch (e) {
            if (e.aborted || !ctx.alive) return;
            if (e.code === "setup_not_required" || (e.status === 409 && !e.message)) {
                ctx.navigate("/login", { replace: true });
                return;
            }
            showError(error, e.message);
            (e.status === 400 || e.status === 401 || e.status === 403 ? code : submit).focus();
        }
    });

    authFrame(root,
        h("h1", {}, "Welcome to Claworc"),
        h("p", { class: "lead" }, "Create the administrator account to finish setting up this appliance."),
        h("div", { class: "callout" },
            h("strong", {}, "Where is the setup code? "),
            "Claworc printed a one-time setup code on the server console when it started. " +
            "It is also stored in the file ",
            h("code", {}, "<data-dir>/setup-code"),
            " on the server. The code stops working once the admin account exists."),
        form);
    code.focus();
}
