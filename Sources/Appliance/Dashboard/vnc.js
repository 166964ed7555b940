// The live view of an instance's display: noVNC's RFB client over the instance's WebSocket,
// connected only while it is wanted (the instance is running), reconnecting with a backoff.
// View-only unless this session holds control (setControl); the daemon drops input from
// everyone else anyway, this only keeps noVNC from sending what would be dropped.

const RFB_URL = "/static/vendor/novnc/core/rfb.js";
let rfbModule = null;

function loadRFB() {
    // Loaded on first use so the list page never pays for noVNC's ~40 modules.
    if (!rfbModule) {
        rfbModule = import(RFB_URL).then((m) => m.default).catch((e) => {
            rfbModule = null;
            throw e;
        });
    }
    return rfbModule;
}

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];

// The daemon refuses a VNC WebSocket after upgrading it, with 4000 + the HTTP status as the
// close code (a browser never shows a script the status of a refused handshake). Refusals
// that a retry cannot change end the view; the others are retried like a lost connection.
const REFUSALS = {
    4401: { final: true, text: "refused: you are not signed in" },
    4403: { final: true, text: "refused: this page's origin is not allowed to connect" },
    4404: { final: true, text: "refused: no such instance, or it is not assigned to you" },
    4409: { final: false, text: "the instance is not running" },
    4503: { final: false, text: "the instance's VNC server is not reachable" },
    4400: { final: false, text: "the server ended a session it could not follow" },
};

/**
 * new VncView(container, url, {onStatus(state, detail), onDrop(closeCode)})
 *   state: "connecting" | "connected" | "disconnected" | "refused" (the daemon said no for a
 *   reason a retry cannot change, see REFUSALS; only reconnectNow() tries again)
 * setWanted(true) connects (and keeps reconnecting); setWanted(false) disconnects.
 * setControl(true) lets keyboard, mouse and pasted text through; false makes it view-only.
 * destroy() disconnects for good.
 */
export class VncView {
    constructor(container, url, { onStatus = () => {}, onDrop = () => {} } = {}) {
        this.container = container;
        this.url = url;
        this.onStatus = onStatus;
        this.onDrop = onDrop;
        this.rfb = null;
        this.wanted = false;
        this.destroyed = false;
        this.failures = 0;
        this.retryTimer = null;
        this.loading = false;
        this.state = "disconnected";
        this.control = false;
        // A paste while in control goes to the instance's clipboard (noVNC itself ignores
        // clipboardPasteFrom when view-only); Ctrl+V inside then pastes it there.
        container.addEventListener("paste", (ev) => {
            if (!this.control || !this.rfb) return;
            const text = ev.clipboardData && ev.clipboardData.getData("text/plain");
            if (text) this.rfb.clipboardPasteFrom(text);
        });
    }

    setControl(control) {
        this.control = control;
        if (this.rfb) this.rfb.viewOnly = !control;
    }

    setStatus(state, detail = "") {
        this.state = state;
        this.onStatus(state, detail);
    }

    setWanted(wanted, reason = "") {
        if (this.destroyed) return;
        if (wanted === this.wanted) {
            if (!wanted && reason && this.state === "disconnected") this.setStatus("disconnected", reason);
            return;
        }
        this.wanted = wanted;
        if (wanted) {
            this.failures = 0;
            this.connect();
        } else {
            this.drop();
            this.setStatus("disconnected", reason);
        }
    }

    /** Reconnect now (e.g. the user pressed "Reconnect"). */
    reconnectNow() {
        if (this.destroyed || !this.wanted) return;
        this.failures = 0;
        if (this.rfb || this.loading) return;
        this.connect();
    }

    destroy() {
        this.destroyed = true;
        this.wanted = false;
        this.drop();
    }

    drop() {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
        const rfb = this.rfb;
        this.rfb = null;               // the coming "disconnect" event is then recognised as ours
        if (rfb) {
            try { rfb.disconnect(); } catch (e) { console.warn("rfb.disconnect", e); }
        }
    }

    async connect() {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
        if (this.destroyed || !this.wanted || this.rfb || this.loading) return;
        this.setStatus("connecting");

        let RFB;
        this.loading = true;
        try {
            RFB = await loadRFB();
        } catch (e) {
            console.error("loading noVNC failed", e);
            this.scheduleRetry("the VNC viewer could not be loaded");
            return;
        } finally {
            this.loading = false;
        }
        if (this.destroyed || !this.wanted || this.rfb) return;

        // Our own WebSocket, handed to noVNC, so that its close code (the refusal) is ours to read.
        let rfb;
        let closed = null;
        try {
            const socket = new WebSocket(this.url);
            socket.addEventListener("close", (ev) => { closed = { code: ev.code, reason: ev.reason }; });
            rfb = new RFB(this.container, socket);
        } catch (e) {
            console.error("RFB failed", e);
            this.scheduleRetry(e.message || String(e));
            return;
        }
        rfb.viewOnly = !this.control;
        rfb.scaleViewport = true;           // the remote screen fits the window, whatever its size
        rfb.resizeSession = false;
        rfb.background = "#111";
        rfb.focusOnClick = true;
        this.rfb = rfb;

        rfb.addEventListener("connect", () => {
            if (rfb !== this.rfb) return;
            this.failures = 0;
            this.setStatus("connected");
        });
        rfb.addEventListener("disconnect", (ev) => {
            if (rfb !== this.rfb) return;   // we asked for it
            this.rfb = null;
            const clean = ev.detail && ev.detail.clean;
            const refusal = closed && REFUSALS[closed.code];
            this.onDrop(closed && closed.code);
            if (refusal && refusal.final) {
                this.setStatus("refused", refusal.text);
                return;
            }
            if (refusal) this.scheduleRetry(refusal.text);
            else this.scheduleRetry(clean ? "the server closed the connection" : "the connection was lost");
        });
        rfb.addEventListener("securityfailure", (ev) => {
            if (rfb !== this.rfb) return;
            const why = ev.detail && (ev.detail.reason || ev.detail.status);
            console.warn("VNC security failure", why);
        });
        rfb.addEventListener("credentialsrequired", () => {
            // The appliance's VNC has no password; if asked anyway, send an empty one.
            if (rfb === this.rfb) rfb.sendCredentials({ password: "" });
        });
    }

    scheduleRetry(why) {
        if (this.destroyed || !this.wanted) {
            this.setStatus("disconnected", why);
            return;
        }
        const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
        this.failures++;
        this.setStatus("disconnected", `${why}; retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            this.connect();
        }, delay);
    }
}
