// Tiny DOM helpers: build elements without innerHTML, so server data is never parsed as HTML.

/**
 * h("button", {class: "btn", onclick: fn, dataset: {action: "start"}}, "Start")
 * Attributes: `class`, `dataset`, `style` (object), `on<event>` (listener), booleans
 * (true → present, false/null/undefined → absent), anything else → setAttribute.
 * Children: nodes, strings/numbers (text), arrays (flattened), null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
        if (value === null || value === undefined || value === false) continue;
        if (key === "class") {
            el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
        } else if (key === "dataset") {
            for (const [k, v] of Object.entries(value)) el.dataset[k] = v;
        } else if (key === "style" && typeof value === "object") {
            Object.assign(el.style, value);
        } else if (key.startsWith("on") && typeof value === "function") {
            el.addEventListener(key.slice(2), value);
        } else if (key === "value") {
            el.value = value;
        } else if (value === true) {
            el.setAttribute(key, "");
        } else {
            el.setAttribute(key, String(value));
        }
    }
    append(el, children);
    return el;
}

function append(el, children) {
    for (const child of children) {
        if (child === null || child === undefined || child === false) continue;
        if (Array.isArray(child)) append(el, child);
        else if (child instanceof Node) el.appendChild(child);
        else el.appendChild(document.createTextNode(String(child)));
    }
}

/** Replace all children of `el`. */
export function replaceChildren(el, ...children) {
    el.textContent = "";
    append(el, children);
}

/** Set text only when it differs (keeps selection and avoids needless layout). */
export function setText(el, text) {
    text = String(text);
    if (el.textContent !== text) el.textContent = text;
}

/** Show `message` in an `.error` element, or hide it when message is empty. */
export function showError(el, message) {
    setText(el, message || "");
    el.hidden = !message;
}

/** Format an ISO 8601 timestamp for people (`seconds` for logs); falls back to the raw string. */
export function formatTime(iso, { seconds = false } = {}) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const opts = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
    if (seconds) opts.second = "2-digit";
    if (d.getFullYear() !== new Date().getFullYear()) opts.year = "numeric";
    return d.toLocaleString(undefined, opts);
}
