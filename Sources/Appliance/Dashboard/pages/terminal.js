// The Terminal tab of an instance: xterm.js over /api/v1/instances/<id>/terminal.
// Binary frames carry the pty's bytes; text frames are JSON control messages (session,
// resize, exit). The session id is kept in sessionStorage per instance, so reloading the page
// re-attaches to the same shell and the server replays its scrollback. A connection that
// drops (the daemon restarting: the shell lives on in the instance) is re-attached on its own.
import { terminalURL } from "../api.js";
import { h, setText } from "../dom.js";

const VENDOR = "/static/vendor/xterm/";
let loading = null;

/** xterm.js and its fit addon are UMD scripts (globals Terminal, FitAddon), loaded once. */
function loadXterm() {
    if (loading) return loading;
    const script = (src) => new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = VENDOR + src;
        s.onload = resolve;
        s.onerror = () => reject(new Error(`could not load ${src}`));
        document.head.appendChild(s);
    });
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = VENDOR + "xterm.min.css";
    document.head.appendChild(css);
    loading = script("xterm.min.js").then(() => script("xterm-addon-fit.min.js"));
    return loading;
}

export class TerminalPanel {
    constructor(id, signal) {
        this.id = id;
        this.key = `claworc.terminal.${id}`;
        this.ws = null;
        this.term = null;
        this.retry = null;
        this.retryMs = 500;
        this.fit = null;
        this.status = h("span", { class: "muted", id: "terminal-status", "data-testid": "terminal-status", role: "status" }, "");
        this.newBtn = h("button", { type: "button", class: "btn btn-sm btn-secondary", id: "terminal-new" }, "New session");
        this.screen = h("div", { class: "terminal-screen", id: "terminal-screen", "data-testid": "terminal-screen" });
        this.element = h("section", { class: "terminal", id: "terminal-panel", "aria-label": "Terminal" },
            h("div", { class: "files-bar" }, this.status, h("div", { class: "spacer" }), this.newBtn),
            this.screen);
        this.newBtn.addEventListener("click", () => {
            sessionStorage.removeItem(this.key);
            this.connect();
        });
        this.resizeObserver = new ResizeObserver(() => this.refit());
        signal.addEventListener("abort", () => this.destroy());
    }

    get sessionID() { return sessionStorage.getItem(this.key); }

    async show() {
        this.element.hidden = false;
        try {
            await loadXterm();
        } catch (e) {
            setText(this.status, e.message);
            return;
        }
        if (!this.term) {
            // The DOM renderer: text stays text (selectable, readable by assistive tools and tests).
            this.term = new window.Terminal({ cursorBlink: true, scrollback: 5000, rendererType: "dom",
                fontFamily: "ui-monospace, SFMono-Regular, Menlo, monospace", fontSize: 13 });
            this.fit = new window.FitAddon.FitAddon();
            this.term.loadAddon(this.fit);
            this.term.open(this.screen);
            this.term.onData((data) => this.send(new TextEncoder().encode(data)));
            this.term.onResize(({ cols, rows }) => this.control({ type: "resize", cols, rows }));
            this.resizeObserver.observe(this.screen);
        }
        this.refit();
        this.term.focus();
        if (!this.ws) this.connect();
    }

    hide() { this.element.hidden = true; }

    refit() {
        if (this.fit && !this.element.hidden && this.screen.clientWidth > 0) {
            try { this.fit.fit(); } catch { /* not laid out yet */ }
        }
    }

    send(bytes) {
        if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
    }

    control(message) {
        if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    connect() {
        if (this.ws) { this.ws.onclose = null; this.ws.close(); }
        clearTimeout(this.retry);
        const sid = this.sessionID;
        const url = terminalURL(this.id, { cols: this.term.cols, rows: this.term.rows, session: sid });
        const ws = new WebSocket(url);
        ws.binaryType = "arraybuffer";
        this.ws = ws;
        setText(this.status, sid ? "re-attaching…" : "connecting…");
        this.status.dataset.state = "connecting";
        ws.onmessage = (event) => {
            if (typeof event.data !== "string") {
                this.term.write(new Uint8Array(event.data));
                return;
            }
            let message;
            try { message = JSON.parse(event.data); } catch { return; }
            if (message.type === "session") {
                // The replay redraws the screen; with none (a new shell, or one whose daemon
                // restarted and read nothing yet) what is on screen stays for a re-attached shell.
                if (message.replay > 0 || message.id !== sid) this.term.reset();
                this.retryMs = 500;
                sessionStorage.setItem(this.key, message.id);
                this.status.dataset.state = "connected";
                this.status.dataset.session = message.id;
                setText(this.status, "connected");
                // The server's pty may have another size than this window.
                this.control({ type: "resize", cols: this.term.cols, rows: this.term.rows });
            } else if (message.type === "exit") {
                sessionStorage.removeItem(this.key);
                this.status.dataset.state = "exited";
                setText(this.status, `the shell exited (code ${message.code ?? "unknown"})`);
            }
        };
        ws.onclose = (event) => {
            if (this.ws !== ws) return;
            this.ws = null;
            if (event.code === 4404 && sid) {
                // The session ended (idle timeout, instance restarted): start a fresh one.
                sessionStorage.removeItem(this.key);
                this.connect();
                return;
            }
            if (this.status.dataset.state === "exited") return;
            this.status.dataset.state = "disconnected";
            setText(this.status, event.code >= 4000 ? `disconnected (${event.reason || event.code})` : "disconnected; reconnecting…");
            if (event.code < 4000) {
                // Dropped, not refused: try again, backing off to 10 s.
                this.retry = setTimeout(() => { if (this.term && !this.ws) this.connect(); }, this.retryMs);
                this.retryMs = Math.min(this.retryMs * 2, 10000);
            }
        };
    }

    destroy() {
        clearTimeout(this.retry);
        this.resizeObserver.disconnect();
        if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
        if (this.term) { this.term.dispose(); this.term = null; }
    }
}
