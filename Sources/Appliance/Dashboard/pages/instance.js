// /instances/<id>: one instance, its controls, and the live browser view (noVNC).
import { api, vncURL } from "../api.js";
import { formatTime, h, replaceChildren, setText, showError } from "../dom.js";
import { subscribeInstanceEvents } from "../events.js";
import { Poller } from "../poller.js";
import { allowedActions, displayReady, stateBadge, updateServiceChips, updateStateBadge } from "../status.js";
import { VncView } from "../vnc.js";
import { ChatPanel } from "./chat.js";
import { FilesPanel } from "./files.js";
import { InstanceSettingsPanel } from "./instance-settings.js";
import { LogsPanel } from "./logs.js";
import { ServicesPanel } from "./services.js";
import { TerminalPanel } from "./terminal.js";
import { UsageCard } from "./usage.js";

const POLL_MS = 2000;
// While the instance starts or runs without a ready VNC server yet (the first second after
// a start), the screen connects on the poll that sees it ready: poll often then.
const DISPLAY_WAIT_POLL_MS = 150;

const NOT_RUNNING = {
    stopped: "The instance is stopped. Start it to see its browser.",
    starting: "The instance is starting…",
    stopping: "The instance is stopping.",
    failed: "The instance failed. Check the error above, then start it again.",
};

export async function instancePage(root, ctx) {
    const id = ctx.params.id;
    document.title = "Instance · Claworc";
    const main = ctx.shell();
    main.classList.add("content-wide", "instance-page");

    let inst;
    try {
        inst = await api.getInstance(id, { signal: ctx.signal });
    } catch (e) {
        if (e.status === 404 && ctx.alive) {
            notFound(main);
            return;
        }
        throw e;
    }
    if (!ctx.alive) return;

    // ---- header: name, state, services, actions
    const title = h("h1", { id: "instance-name" });
    const badge = stateBadge(inst.state, { id: "instance-state" });
    const chips = h("div", { class: "chips", id: "instance-services" });
    const created = h("span", { class: "muted", id: "instance-created" });
    const mkBtn = (action, label, cls) =>
        h("button", { type: "button", id: `instance-${action}`, class: `btn ${cls}`, dataset: { action } }, label);
    const startBtn = mkBtn("start", "Start", "btn-primary");
    const stopBtn = mkBtn("stop", "Stop", "btn-secondary");
    const restartBtn = mkBtn("restart", "Restart", "btn-secondary");
    const actionError = h("p", { class: "error", role: "alert", id: "instance-error", hidden: true });
    const pollError = h("p", { class: "error", role: "alert", id: "instance-poll-error", hidden: true });
    const lastError = h("p", { class: "callout callout-danger", id: "instance-last-error", hidden: true });

    // ---- viewer
    const statusDot = h("span", { class: "status-dot", "aria-hidden": "true" });
    const status = h("span", { id: "vnc-status", "data-testid": "vnc-status", role: "status" }, "disconnected");
    const statusDetail = h("span", { id: "vnc-detail", class: "muted" });
    const reconnectBtn = h("button", { type: "button", class: "btn btn-sm btn-ghost-dark", id: "vnc-reconnect", hidden: true }, "Reconnect now");
    const fullscreenBtn = h("button", { type: "button", class: "btn btn-sm btn-ghost-dark", id: "vnc-fullscreen", title: "Full screen" }, "Full screen");
    // Who controls the screen: one session at a time; everyone else watches.
    const controlLine = h("span", { id: "control-status", "data-testid": "control-status", class: "muted" });
    const takeBtn = h("button", { type: "button", class: "btn btn-sm btn-ghost-dark", id: "control-take", hidden: true }, "Take control");
    const releaseBtn = h("button", { type: "button", class: "btn btn-sm btn-ghost-dark", id: "control-release", hidden: true }, "Release");
    const screen = h("div", { id: "vnc-screen", "data-testid": "vnc-screen", class: "vnc-screen" });
    const placeholder = h("div", { class: "vnc-placeholder", id: "vnc-placeholder" });
    const viewer = h("section", { class: "viewer", "aria-label": "Live browser view" },
        h("div", { class: "viewer-bar" },
            statusDot, status, statusDetail,
            h("div", { class: "spacer" }),
            controlLine, takeBtn, releaseBtn,
            reconnectBtn, fullscreenBtn),
        h("div", { class: "viewer-body" }, screen, placeholder));

    // ---- the services, each with its own restart
    const services = new ServicesPanel(id, ctx.signal, () => poller.poke());

    // ---- tabs: the live browser, the home's files, the services' logs, a shell
    const files = new FilesPanel(id, ctx.signal);
    files.element.hidden = true;
    const logs = new LogsPanel(id, ctx.signal);
    logs.element.hidden = true;
    const terminal = new TerminalPanel(id, ctx.signal);
    terminal.element.hidden = true;
    const chat = new ChatPanel(id, ctx.signal);
    chat.element.hidden = true;
    const settings = new InstanceSettingsPanel(id, ctx);
    settings.element.hidden = true;
    const tabs = h("div", { class: "tabs", role: "tablist" });
    const panels = { browser: viewer, chat: chat.element, files: files.element, logs: logs.element, terminal: terminal.element,
                     settings: settings.element };
    for (const [name, label] of [["browser", "Browser"], ["chat", "Chat"], ["files", "Files"], ["logs", "Logs"], ["terminal", "Terminal"],
                                 ["settings", "Settings"]]) {
        tabs.appendChild(h("button", {
            type: "button", role: "tab", class: "tab", id: `tab-${name}`, dataset: { tab: name },
            "aria-selected": name === "browser" ? "true" : "false",
            onclick: () => {
                for (const tab of tabs.children) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
                for (const [key, panel] of Object.entries(panels)) panel.hidden = key !== name;
                if (name === "files") files.load();
                if (name === "settings") settings.load();
                if (name === "logs") logs.show(); else logs.hide();
                if (name === "terminal") terminal.show(); else terminal.hide();
                if (name === "chat") chat.show(); else chat.hide();
            },
        }, label));
    }

    replaceChildren(main,
        h("div", { class: "instance-head" },
            h("a", { href: "/", class: "back" }, "← Instances"),
            h("div", { class: "instance-title" },
                title, badge, chips),
            h("div", { class: "spacer" }),
            created,
            h("div", { class: "actions" }, startBtn, stopBtn, restartBtn)),
        actionError,
        pollError,
        lastError,
        services.element,
        new UsageCard(id, ctx).element,
        tabs,
        viewer,
        chat.element,
        files.element,
        logs.element,
        terminal.element,
        settings.element);

    const vnc = new VncView(screen, vncURL(id), {
        onStatus: (state, detail) => {
            setText(status, state);
            status.dataset.state = state;
            statusDot.dataset.state = state;
            viewer.dataset.state = state;
            setText(statusDetail, detail ? `— ${detail}` : "");
            reconnectBtn.hidden = !((state === "disconnected" || state === "refused") && vnc.wanted);
            updatePlaceholder();
            applyControl(controller);
            if (state === "connected") poller.poke();   // who controls, now that there is a screen
        },
        onDrop: () => poller.poke(),     // did it drop because the instance stopped?
    });
    ctx.onCleanup(() => vnc.destroy());
    reconnectBtn.addEventListener("click", () => vnc.reconnectNow());

    let pending = false;
    let mutations = 0;
    let controller = null;          // the last GET control answer's "controller"
    let controlPending = false;
    const isAdmin = () => ctx.session.user && ctx.session.user.role === "admin";

    function applyControl(next) {
        controller = next;
        const mine = !!(controller && controller.this_session);
        vnc.setControl(mine);
        const connected = vnc.state === "connected";
        if (!controller) setText(controlLine, connected ? "Watching; nobody controls the screen." : "");
        else if (mine) setText(controlLine, "You control the screen.");
        else setText(controlLine, `Watching; ${controller.user} controls the screen since ${formatTime(controller.since)}.`);
        controlLine.dataset.state = mine ? "mine" : controller ? "other" : "free";
        // Taking over from another session is the admin's; taking a free screen anyone's.
        takeBtn.hidden = !connected || mine || (controller && !isAdmin());
        setText(takeBtn, controller && !mine ? "Take over" : "Take control");
        releaseBtn.hidden = !connected || !mine;
        takeBtn.disabled = releaseBtn.disabled = controlPending;
    }

    async function changeControl(change) {
        if (controlPending) return;
        controlPending = true;
        applyControl(controller);
        showError(actionError, "");
        try {
            await change();
            const next = await api.getControl(id, { signal: ctx.signal });
            if (ctx.alive) applyControl(next.controller);
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(actionError, `Could not change control: ${e.message}`);
        } finally {
            controlPending = false;
            if (ctx.alive) applyControl(controller);
        }
    }
    takeBtn.addEventListener("click", () =>
        changeControl(() => api.takeControl(id, !!controller && !controller.this_session, { signal: ctx.signal })));
    releaseBtn.addEventListener("click", () => changeControl(() => api.releaseControl(id, { signal: ctx.signal })));

    function updatePlaceholder() {
        const running = inst.state === "running";
        let text = "";
        if (!running) text = NOT_RUNNING[inst.state] || `The instance is ${inst.state}.`;
        else if (!displayReady(inst)) text = "Waiting for the instance's display server…";
        else if (vnc.state === "connecting") text = "Connecting to the instance's display…";
        else if (vnc.state === "disconnected") text = "Disconnected from the instance's display.";
        else if (vnc.state === "refused") text = "The display connection was refused.";
        setText(placeholder, text);
        placeholder.hidden = running && vnc.state === "connected";
    }

    function apply(next) {
        inst = next;
        document.title = `${inst.name} · Claworc`;
        setText(title, inst.name);
        updateStateBadge(badge, inst.state);
        updateServiceChips(chips, inst.services);
        services.update(inst.services, inst.state === "running");
        chat.instanceState(inst.state);
        setText(created, inst.created_at ? `created ${formatTime(inst.created_at)}` : "");
        setText(lastError, inst.last_error ? `Last error: ${inst.last_error}` : "");
        lastError.hidden = !inst.last_error;
        const allowed = allowedActions(inst.state);
        startBtn.disabled = pending || !allowed.start;
        stopBtn.disabled = pending || !allowed.stop;
        restartBtn.disabled = pending || !allowed.restart;
        const ready = displayReady(inst);
        vnc.setWanted(ready, ready ? "" : inst.state === "running"
            ? "waiting for the VNC service" : `instance is ${inst.state}`);
        updatePlaceholder();
    }

    async function refresh() {
        const before = mutations;
        try {
            const [next, control] = await Promise.all([
                api.getInstance(id, { signal: ctx.signal }),
                api.getControl(id, { signal: ctx.signal }),
            ]);
            if (!ctx.alive || before !== mutations) return;
            showError(pollError, "");
            apply(next);
            if (!controlPending) applyControl(control.controller);
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            if (e.status === 404) {
                vnc.destroy();
                poller.stop();
                notFound(main);
                return;
            }
            showError(pollError, `Could not refresh: ${e.message} Retrying…`);
        }
    }

    async function act(action) {
        if (pending) return;
        pending = true;
        apply(inst);
        showError(actionError, "");
        try {
            const next = await api.instanceAction(id, action, { signal: ctx.signal });
            if (!ctx.alive) return;
            mutations++;
            pending = false;
            if (action === "restart") vnc.setWanted(false, "restarting");
            if (next && next.id !== undefined) apply(next);
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(actionError, `Could not ${action} the instance: ${e.message}`);
        } finally {
            pending = false;
            if (ctx.alive) { apply(inst); poller.poke(); }
        }
    }
    startBtn.addEventListener("click", () => act("start"));
    stopBtn.addEventListener("click", () => act("stop"));
    restartBtn.addEventListener("click", () => act("restart"));

    fullscreenBtn.addEventListener("click", () => {
        if (document.fullscreenElement) document.exitFullscreen();
        else if (viewer.requestFullscreen) viewer.requestFullscreen().catch(() => {});
    });

    apply(inst);
    applyControl(null);
    const displayComing = () => inst && (inst.state === "starting" || (inst.state === "running" && !displayReady(inst)));
    const poller = new Poller(refresh, () => (displayComing() ? DISPLAY_WAIT_POLL_MS : POLL_MS), ctx.signal);
    poller.schedule(POLL_MS);
    // State and services as they change; the poll still brings usage and who controls the screen.
    subscribeInstanceEvents(id, ctx.signal, {
        onState: (state, lastError) => {
            if (!ctx.alive || pending) return;
            const changed = state !== inst.state;
            apply({ ...inst, state, last_error: lastError });
            if (changed) poller.poke();   // the services of a stopped instance, its usage
        },
        onServices: (list) => {
            if (ctx.alive && inst.state === "running") apply({ ...inst, services: list });
        },
    });
}

function notFound(main) {
    document.title = "Instance not found · Claworc";
    main.className = "content";
    replaceChildren(main,
        h("section", { class: "card empty" },
            h("p", { class: "empty-title" }, "Instance not found"),
            h("p", { class: "muted" }, "It may have been deleted."),
            h("p", {}, h("a", { href: "/", class: "btn btn-secondary" }, "Back to instances"))));
}
