// Claworc dashboard: a small single-page app keyed on location.pathname.
//
// The server answers /, /login, /setup, /instances/<id>, /users, /account, /audit and /agent with
// index.html; this module picks the page, checks the session (and the role, for admin pages)
// and mounts it. Pages get a context whose AbortSignal fires when
// the user navigates away, so their polls, requests and VNC connections end with them.

import { api, onUnauthorized } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { setupPage } from "./pages/setup.js";
import { loginPage } from "./pages/login.js";
import { instancesPage } from "./pages/instances.js";
import { instancePage } from "./pages/instance.js";
import { usersPage } from "./pages/users.js";
import { accountPage } from "./pages/account.js";
import { auditPage } from "./pages/audit.js";
import { agentPage } from "./pages/agent.js";
import { usagePage } from "./pages/usage.js";

const root = document.getElementById("app");

/** The signed-in user ({id, username, role}) once known. */
export const session = { user: null };

const routes = [
    { path: /^\/$/, page: instancesPage, auth: true },
    { path: /^\/instances\/(\d+)\/?$/, page: instancePage, auth: true, params: (m) => ({ id: Number(m[1]) }) },
    { path: /^\/users\/?$/, page: usersPage, auth: true, admin: true },
    { path: /^\/audit\/?$/, page: auditPage, auth: true, admin: true },
    { path: /^\/agent\/?$/, page: agentPage, auth: true, admin: true },
    { path: /^\/usage\/?$/, page: usagePage, auth: true, admin: true },
    { path: /^\/account\/?$/, page: accountPage, auth: true },
    { path: /^\/login\/?$/, page: loginPage },
    { path: /^\/setup\/?$/, page: setupPage },
];

function matchRoute(pathname) {
    for (const route of routes) {
        const m = route.path.exec(pathname);
        if (m) return { route, params: route.params ? route.params(m) : {} };
    }
    return null;
}

let current = null;   // {controller, cleanups, route}

/** Go to an in-app path. */
export function navigate(path, { replace = false } = {}) {
    const here = location.pathname + location.search;
    if (replace) history.replaceState(null, "", path);
    else if (path !== here) history.pushState(null, "", path);
    render();
}

function teardown() {
    if (!current) return;
    const { controller, cleanups } = current;
    current = null;
    controller.abort();
    for (const fn of cleanups.reverse()) {
        try { fn(); } catch (e) { console.error("cleanup failed", e); }
    }
}

/** Only accept same-site paths as ?next= targets. */
function safeNext(value) {
    return value && value.startsWith("/") && !value.startsWith("//") && matchRoute(value.split("?")[0])
        ? value : "/";
}

/** Send a signed-out visitor to /setup (first run) or /login, remembering where they were. */
async function redirectToAuth(signal) {
    let required = false;
    try {
        required = (await api.setupStatus({ signal })).required === true;
    } catch (e) {
        if (e.aborted) return;
    }
    if (required) {
        navigate("/setup", { replace: true });
    } else {
        const here = location.pathname + location.search;
        navigate(here === "/" ? "/login" : `/login?next=${encodeURIComponent(here)}`, { replace: true });
    }
}

let redirecting = false;
onUnauthorized(() => {
    session.user = null;
    if (redirecting || !current || !current.route || !current.route.auth) return;
    redirecting = true;
    redirectToAuth(undefined).finally(() => { redirecting = false; });
});

async function render() {
    teardown();
    const controller = new AbortController();
    const cleanups = [];
    const match = matchRoute(location.pathname);
    current = { controller, cleanups, route: match && match.route };

    const ctx = {
        signal: controller.signal,
        params: match ? match.params : {},
        query: new URLSearchParams(location.search),
        session,
        navigate,
        nextPath: () => safeNext(new URLSearchParams(location.search).get("next")),
        onCleanup: (fn) => cleanups.push(fn),
        get alive() { return !controller.signal.aborted; },
        shell: (...content) => shell(ctx, content),
        fail: (err) => showFatal(ctx, err),
    };

    if (!match) {
        document.title = "Not found · Claworc";
        replaceChildren(root, centered(
            h("h1", {}, "Page not found"),
            h("p", { class: "muted" }, "There is nothing at ", h("code", {}, location.pathname), "."),
            h("p", {}, h("a", { href: "/" }, "Go to the instance list")),
        ));
        return;
    }

    if (match.route.auth && !session.user) {
        replaceChildren(root, h("div", { class: "loading", "aria-busy": "true" }, "Loading…"));
        try {
            session.user = (await api.me({ signal: ctx.signal })).user;
        } catch (e) {
            if (e.aborted || !ctx.alive) return;
            if (e.status === 401) { await redirectToAuth(ctx.signal); return; }
            showFatal(ctx, e);
            return;
        }
        if (!ctx.alive) return;
    }

    // The API refuses anyway (403); this only spares a non-admin a page of errors.
    if (match.route.admin && session.user.role !== "admin") {
        document.title = "Not allowed · Claworc";
        const main = ctx.shell();
        replaceChildren(main, h("section", { class: "card empty", id: "not-allowed" },
            h("p", { class: "empty-title" }, "Admins only"),
            h("p", { class: "muted" }, "This page is for the appliance's administrators."),
            h("p", {}, h("a", { href: "/", class: "btn btn-secondary" }, "Back to instances"))));
        return;
    }

    try {
        await match.route.page(root, ctx);
    } catch (e) {
        if (e && e.aborted) return;
        if (!ctx.alive) return;
        if (e && e.status === 401) return;   // onUnauthorized is already redirecting
        showFatal(ctx, e);
    }
}

function centered(...children) {
    return h("main", { class: "auth-page" }, h("section", { class: "card auth-card" }, ...children));
}

function showFatal(ctx, err) {
    if (!ctx.alive) return;
    console.error(err);
    replaceChildren(root, centered(
        h("h1", {}, "Something went wrong"),
        h("p", { class: "error" }, (err && err.message) || String(err)),
        h("p", {}, h("button", { class: "btn", type: "button", onclick: () => render() }, "Try again")),
    ));
}

/** The frame of signed-in pages: top bar with the user and Log out, then the page content. */
function shell(ctx, content) {
    const logoutError = h("span", { class: "error topbar-error", hidden: true });
    const logoutBtn = h("button", { id: "logout", class: "btn btn-ghost", type: "button" }, "Log out");
    logoutBtn.addEventListener("click", async () => {
        logoutBtn.disabled = true;
        try {
            await api.logout();
        } catch (e) {
            if (e.status !== 401) {
                logoutBtn.disabled = false;
                logoutError.textContent = e.message;
                logoutError.hidden = false;
                return;
            }
        }
        session.user = null;
        navigate("/login", { replace: true });
    });
    const user = session.user || {};
    const header = h("header", { class: "topbar" },
        h("a", { href: "/", class: "brand" },
            h("img", { src: "/static/logo.svg", alt: "", width: 24, height: 24 }),
            h("span", {}, "Claworc")),
        h("nav", { class: "topnav", "aria-label": "Main" }, ...navLinks(user)),
        h("div", { class: "spacer" }),
        logoutError,
        h("span", { class: "whoami", id: "current-user", title: user.role ? `role: ${user.role}` : "" },
            h("span", { class: "avatar", "aria-hidden": "true" }, (user.username || "?").slice(0, 1).toUpperCase()),
            h("span", { "data-testid": "username" }, user.username || ""),
            user.role ? h("span", { class: "role" }, user.role) : null),
        logoutBtn,
    );
    const main = h("main", { class: "content" }, ...content);
    replaceChildren(root, header, main);
    return main;
}

/** The header's links; admin pages only for admins (the API refuses everyone else anyway). */
function navLinks(user) {
    const admin = user.role === "admin";
    const links = [
        { href: "/", id: "nav-instances", label: "Instances", here: (p) => p === "/" || p.startsWith("/instances/") },
        admin && { href: "/users", id: "nav-users", label: "Users" },
        admin && { href: "/agent", id: "nav-agent", label: "Agent" },
        admin && { href: "/usage", id: "nav-usage", label: "Usage" },
        admin && { href: "/audit", id: "nav-audit", label: "Audit" },
        { href: "/account", id: "nav-account", label: "Account" },
    ].filter(Boolean);
    const path = location.pathname.replace(/\/$/, "") || "/";
    return links.map((link) => h("a", {
        href: link.href, id: link.id,
        "aria-current": (link.here ? link.here(path) : path === link.href) ? "page" : null,
    }, link.label));
}

// In-app links: plain <a href="/..."> elements; same-origin clicks on page routes use pushState.
document.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest && ev.target.closest("a[href]");
    if (!a || a.target || a.hasAttribute("download") || a.origin !== location.origin) return;
    if (!matchRoute(a.pathname)) return;
    ev.preventDefault();
    navigate(a.pathname + a.search);
});

window.addEventListener("popstate", () => render());

render();
