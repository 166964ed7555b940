// The Chat tab of an instance: the conversation with its agent over
// /api/v1/instances/<id>/chat (docs/chat.md). The daemon speaks OpenClaw's protocol; this page
// sees only our own small messages. The agent's markdown is rendered with marked and sanitised
// with DOMPurify (both from Debian packages, pinned, embedded like noVNC) before it reaches the
// page; everything else is text nodes.
import { h, replaceChildren, setText } from "../dom.js";

const VENDOR = "/static/vendor/";
let loading = null;

/** marked (a UMD script that sets globalThis.marked) and DOMPurify (an ES module), once. */
function loadMarkdown() {
    if (loading) return loading;
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/static/chat.css";
    document.head.appendChild(css);
    loading = Promise.all([import(VENDOR + "marked/marked.umd.min.js"), import(VENDOR + "dompurify/purify.es.js")])
        .then(([, purify]) => ({ marked: globalThis.marked, purify: purify.default }))
        .catch(() => null);
    return loading;
}

function chatURL(id) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/v1/instances/${encodeURIComponent(id)}/chat`;
}

const STATUS_TEXT = {
    ready: "Agent ready",
    connecting: "Waiting for the agent",
    failed: "Agent failed",
    stopped: "Instance stopped",
    disconnected: "Disconnected",
};

/** The text of a pi-shaped message's content (a string or blocks). */
function textOf(content) {
    if (typeof content === "string") return content;
    if (!Array.isArray(content)) return "";
    return content.filter((b) => b && b.type === "text" && typeof b.text === "string").map((b) => b.text).join("");
}

export class ChatPanel {
    constructor(id, signal) {
        this.id = id;
        this.ws = null;
        this.md = null;
        this.runs = new Map();      // runId → its answer bubble, while the run lasts
        this.pending = null;        // the bubble of a message sent, until its run has an id
        this.retry = 0;
        this.closed = false;
        this.status = h("span", { class: "chat-status", id: "chat-status", "data-testid": "chat-status", role: "status" }, "");
        this.newBtn = h("button", { type: "button", class: "btn btn-sm btn-secondary", id: "chat-new" }, "New chat");
        this.stopBtn = h("button", { type: "button", class: "btn btn-sm btn-danger", id: "chat-stop", hidden: true }, "Stop");
        this.log = h("div", { class: "chat-log", id: "chat-log", "data-testid": "chat-log", "aria-live": "polite" });
        this.error = h("div", { class: "error", id: "chat-error", role: "alert", hidden: true });
        this.input = h("textarea", { class: "chat-input", id: "chat-input", rows: "3", placeholder: "Message the agent…",
                                     "aria-label": "Message" });
        this.sendBtn = h("button", { type: "submit", class: "btn", id: "chat-send" }, "Send");
        const form = h("form", { class: "chat-form" }, this.input, this.sendBtn);
        this.element = h("section", { class: "chat", id: "chat-panel", "aria-label": "Chat" },
            h("div", { class: "files-bar" }, this.status, h("div", { class: "spacer" }), this.stopBtn, this.newBtn),
            this.log, this.error, form);
        form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
        this.input.addEventListener("keydown", (e) => {
            if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); this.submit(); }
        });
        this.stopBtn.addEventListener("click", () => this.control({ type: "abort" }));
        this.newBtn.addEventListener("click", () => this.control({ type: "reset" }));
        signal.addEventListener("abort", () => this.destroy());
    }

    async show() {
        this.element.hidden = false;
        if (!this.md) this.md = await loadMarkdown();
        if (!this.ws) this.connect();
        this.input.focus();
    }

    hide() { this.element.hidden = true; }

    /** The instance page's latest state: a chat left closed by a stopped instance comes back. */
    instanceState(state) {
        if (state === "running" && !this.element.hidden && !this.ws) this.connect();
    }

    control(message) {
        if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    submit() {
        const text = this.input.value.trim();
        if (!text || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
        this.showError("");
        this.control({ type: "send", text });
        this.input.value = "";
        this.log.appendChild(this.messageEl("user", text));
        this.pending = this.newBubble();
        this.scroll();
    }

    setStatus(state, reason) {
        this.status.dataset.state = state;
        setText(this.status, (STATUS_TEXT[state] || state) + (reason ? ` — ${reason}` : ""));
        this.sendBtn.disabled = state !== "ready";
    }

    showError(message) {
        setText(this.error, message || "");
        this.error.hidden = !message;
    }

    connect() {
        if (this.ws) { this.ws.onclose = null; this.ws.close(); }
        const ws = new WebSocket(chatURL(this.id));
        this.ws = ws;
        this.setStatus("connecting");
        ws.onopen = () => { this.retry = 0; };
        ws.onmessage = (event) => {
            let m;
            try { m = JSON.parse(event.data); } catch { return; }
            this.handle(m);
        };
        ws.onclose = (event) => {
            if (this.ws !== ws) return;
            this.ws = null;
            if (event.code === 4409) this.setStatus("stopped");
            else this.setStatus("disconnected", event.code >= 4000 ? (event.reason || String(event.code)) : "");
            // Refusals (not signed in, not allowed, not running) are not retried; drops are.
            if (!this.closed && event.code < 4000) {
                this.retry = Math.min(this.retry + 1, 5);
                setTimeout(() => { if (!this.closed && !this.ws) this.connect(); }, 500 * 2 ** this.retry);
            }
        };
    }

    handle(m) {
        switch (m.type) {
        case "status":
            this.setStatus(m.agent, m.reason);
            break;
        case "history":
            this.renderHistory(m.messages || []);
            break;
        case "started":
            this.bubbleFor(m.runId);
            break;
        case "delta":
            this.setAnswer(this.bubbleFor(m.runId), m.text);
            break;
        case "tool":
            this.toolCard(this.bubbleFor(m.runId), m);
            break;
        case "final":
            this.endRun(m.runId, m.text, null);
            break;
        case "aborted":
            this.endRun(m.runId, m.text, "stopped");
            break;
        case "error":
            this.showError(m.message);
            if (m.runId) this.endRun(m.runId, null, "failed");
            break;
        }
    }

    newBubble() {
        const bubble = this.messageEl("assistant", "");
        bubble.classList.add("streaming");
        this.log.appendChild(bubble);
        this.stopBtn.hidden = false;
        return bubble;
    }

    /** The bubble of a run: its own, else the message this page just sent (a run's first events
     *  may come before its `started`), else a new one (a run started in another tab of this
     *  session, or by someone else in a shared chat). Each run keeps its bubble to its end, so
     *  a run that ends late never writes into the next one's. */
    bubbleFor(runId) {
        let bubble = this.runs.get(runId);
        if (!bubble) {
            bubble = this.pending || this.newBubble();
            this.pending = null;
            bubble.dataset.run = runId;
            this.runs.set(runId, bubble);
        }
        return bubble;
    }

    endRun(runId, text, how) {
        const bubble = this.runs.get(runId) || (this.pending && this.bubbleFor(runId));
        if (bubble) {
            if (text) this.setAnswer(bubble, text);
            bubble.classList.remove("streaming");
            if (how) bubble.dataset.end = how;
            this.runs.delete(runId);
        }
        this.stopBtn.hidden = this.runs.size === 0 && !this.pending;
    }

    setAnswer(bubble, text) {
        this.renderMarkdown(bubble.querySelector(".chat-text"), text);
        this.scroll();
    }

    toolCard(bubble, m) {
        const key = m.toolCallId || m.name;
        let card = [...bubble.querySelectorAll(".chat-tool")].find((c) => c.dataset.call === key);
        if (!card) {
            card = h("div", { class: "chat-tool", "data-testid": "chat-tool", dataset: { tool: m.name, call: key } },
                h("span", { class: "chat-tool-name" }, `🔧 ${m.name}`), h("span", { class: "chat-tool-phase" }, ""),
                m.args ? h("pre", { class: "chat-tool-args" }, JSON.stringify(m.args, null, 1).slice(0, 2000)) : null);
            bubble.insertBefore(card, bubble.querySelector(".chat-text"));
        }
        card.dataset.phase = m.phase;
        setText(card.querySelector(".chat-tool-phase"), m.phase === "result" ? (m.isError ? " failed" : " done") : " running…");
        this.scroll();
    }

    renderHistory(messages) {
        // Runs still streaming here keep their bubbles; the history replaces the rest.
        const live = [...this.runs.values(), ...(this.pending ? [this.pending] : [])];
        const items = [];
        for (const msg of messages) {
            if (msg.role === "user") items.push(this.messageEl("user", textOf(msg.content)));
            else if (msg.role === "assistant") {
                const el = this.messageEl("assistant", textOf(msg.content));
                for (const block of Array.isArray(msg.content) ? msg.content : []) {
                    if (block && block.type === "toolCall") {
                        el.insertBefore(h("div", { class: "chat-tool", "data-testid": "chat-tool", dataset: { tool: block.name, phase: "result" } },
                            h("span", { class: "chat-tool-name" }, `🔧 ${block.name}`)), el.querySelector(".chat-text"));
                    }
                }
                items.push(el);
            }
        }
        replaceChildren(this.log, items, live);
        if (!messages.length && !live.length) this.log.appendChild(h("p", { class: "muted chat-empty" }, "No messages yet."));
        this.scroll();
    }

    messageEl(role, text) {
        const body = h("div", { class: "chat-text" });
        if (role === "assistant") this.renderMarkdown(body, text); else body.textContent = text;
        return h("div", { class: `chat-msg chat-${role}`, "data-testid": `chat-${role}` }, body);
    }

    renderMarkdown(el, text) {
        if (this.md && this.md.marked && this.md.purify) {
            const html = this.md.marked.parse(text || "", { mangle: false, headerIds: false });
            el.replaceChildren(this.md.purify.sanitize(html, { RETURN_DOM_FRAGMENT: true }));
        } else {
            el.textContent = text || "";
        }
    }

    scroll() { this.log.scrollTop = this.log.scrollHeight; }

    destroy() {
        this.closed = true;
        if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
    }
}
