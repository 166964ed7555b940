// Instance and service state rendering shared by the list and the instance page.
import { h, replaceChildren, setText } from "./dom.js";

export const INSTANCE_STATES = ["stopped", "starting", "running", "stopping", "failed"];

/** Which of start/stop/restart make sense in an instance state. */
export function allowedActions(state) {
    return {
        start: state === "stopped" || state === "failed",
        stop: state === "running" || state === "failed",
        restart: state === "running" || state === "failed",
    };
}

/** An instance's display can be viewed: it is running and its VNC service (if listed) is up. */
export function displayReady(inst) {
    if (!inst || inst.state !== "running") return false;
    const vnc = (inst.services || []).find((s) => s.name === "vnc");
    return !vnc || vnc.state === "ready";
}

/** The state badge: a span whose text is exactly the state. */
export function stateBadge(state, attrs = {}) {
    const el = h("span", attrs);
    updateStateBadge(el, state);
    return el;
}

export function updateStateBadge(el, state) {
    const known = INSTANCE_STATES.includes(state) ? state : "unknown";
    el.className = `badge state-${known}`;
    el.dataset.state = state;
    setText(el, state);
}

function serviceTitle(svc) {
    const parts = [`${svc.name}: ${svc.state}`];
    if (svc.pid !== null && svc.pid !== undefined) parts.push(`pid ${svc.pid}`);
    parts.push(`${svc.restarts || 0} restart${svc.restarts === 1 ? "" : "s"}`);
    if (svc.oom_kills) parts.push(`${svc.oom_kills} OOM kill${svc.oom_kills === 1 ? "" : "s"}`);
    if (svc.reason) parts.push(svc.reason);
    return parts.join(" · ");
}

/** One chip per service: "● xvfb" coloured by the service's state. */
export function serviceChips(services) {
    return (services || []).map((svc) =>
        h("span", {
            class: `chip svc-${svc.state}`,
            title: serviceTitle(svc),
            dataset: { service: svc.name, state: svc.state },
        },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { class: "chip-name" }, svc.name),
        h("span", { class: "chip-state" }, svc.state),
        svc.restarts > 0 ? h("span", { class: "chip-restarts", title: "restarts" }, `↻${svc.restarts}`) : null,
        ));
}

/** Re-render the chips in `container` only when something in them changed. */
export function updateServiceChips(container, services) {
    const key = JSON.stringify((services || []).map((s) => [s.name, s.state, s.pid, s.restarts, s.reason, s.oom_kills]));
    if (container.dataset.key === key) return;
    container.dataset.key = key;
    replaceChildren(container, serviceChips(services));
}
