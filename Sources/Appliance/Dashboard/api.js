// The JSON API client. Every call goes to /api/v1 on this origin; the session cookie rides along.
// Failures are thrown as ApiError carrying the server's {"error":{"code","message"}}.

export class ApiError extends Error {
    constructor(status, code, message) {
        super(message);
        this.name = "ApiError";
        this.status = status;   // HTTP status; 0 when the server could not be reached
        this.code = code;       // the server's machine code, or "network" / "aborted" / "http_<status>"
    }
    get aborted() { return this.code === "aborted"; }
}

let unauthorizedHandler = null;

/** Called with the ApiError on any 401, unless the call passed {allow401: true}. */
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

/**
 * request("POST", "/instances", {name}) → parsed JSON (null for 204).
 * options.signal aborts the request; options.allow401 keeps a 401 from triggering the
 * global "go to /login" handler (for login itself and session probes).
 */
export async function request(method, path, body, options = {}) {
    const init = {
        method,
        headers: { "Accept": "application/json" },
        credentials: "same-origin",
        cache: "no-store",
        signal: options.signal,
    };
    if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
    }

    let res;
    try {
        res = await fetch("/api/v1" + path, init);
    } catch (e) {
        if (e && e.name === "AbortError") throw new ApiError(0, "aborted", "Request cancelled.");
        throw new ApiError(0, "network", "Cannot reach the Claworc server.");
    }

    let data = null;
    if (res.status !== 204) {
        let text = "";
        try {
            text = await res.text();
        } catch (e) {
            if (e && e.name === "AbortError") throw new ApiError(0, "aborted", "Request cancelled.");
            throw new ApiError(0, "network", "The connection to the server was interrupted.");
        }
        if (text) {
            try { data = JSON.parse(text); } catch { data = null; }
        }
    }

    if (!res.ok) {
        const e = data && typeof data === "object" ? data.error : null;
        const err = new ApiError(
            res.status,
            (e && e.code) || `http_${res.status}`,
            (e && e.message) || `The server answered ${res.status} ${res.statusText}`.trim(),
        );
        if (res.status === 401 && !options.allow401 && unauthorizedHandler) unauthorizedHandler(err);
        throw err;
    }
    return data;
}

export const api = {
    setupStatus: (o) => request("GET", "/setup", undefined, o),
    setup: (code, username, password, o) =>
        request("POST", "/setup", { code, username, password }, { allow401: true, ...o }),
    login: (username, password, o) =>
        request("POST", "/auth/login", { username, password }, { allow401: true, ...o }),
    logout: (o) => request("POST", "/auth/logout", undefined, { allow401: true, ...o }),
    me: (o) => request("GET", "/auth/me", undefined, { allow401: true, ...o }),

    passkeyLoginOptions: (o) => request("POST", "/auth/passkeys/login/options", {}, { allow401: true, ...o }),
    passkeyLogin: (credential, o) => request("POST", "/auth/passkeys/login", { credential }, { allow401: true, ...o }),
    passkeyRegisterOptions: (o) => request("POST", "/auth/passkeys/register/options", {}, o),
    registerPasskey: (name, credential, o) => request("POST", "/auth/passkeys/register", { name, credential }, o),
    listPasskeys: (o) => request("GET", "/auth/passkeys", undefined, o),
    renamePasskey: (id, name, o) => request("PATCH", `/auth/passkeys/${encodeURIComponent(id)}`, { name }, o),
    deletePasskey: (id, o) => request("DELETE", `/auth/passkeys/${encodeURIComponent(id)}`, undefined, o),

    listInstances: (o) => request("GET", "/instances", undefined, o),
    createInstance: (name, o) => request("POST", "/instances", { name }, o),
    getInstance: (id, o) => request("GET", `/instances/${encodeURIComponent(id)}`, undefined, o),
    deleteInstance: (id, o) => request("DELETE", `/instances/${encodeURIComponent(id)}`, undefined, o),
    instanceAction: (id, action, o) =>
        request("POST", `/instances/${encodeURIComponent(id)}/${action}`, undefined, o),

    getControl: (id, o) => request("GET", `/instances/${encodeURIComponent(id)}/control`, undefined, o),
    takeControl: (id, force, o) =>
        request("POST", `/instances/${encodeURIComponent(id)}/control`, force ? { force: true } : {}, o),
    releaseControl: (id, o) => request("DELETE", `/instances/${encodeURIComponent(id)}/control`, undefined, o),
    restartService: (id, name, o) =>
        request("POST", `/instances/${encodeURIComponent(id)}/services/${encodeURIComponent(name)}/restart`, undefined, o),

    listFiles: (id, path, o) =>
        request("GET", `/instances/${encodeURIComponent(id)}/files?path=${encodeURIComponent(path)}`, undefined, o),
    makeFolder: (id, path, o) => request("POST", `/instances/${encodeURIComponent(id)}/files/mkdir`, { path }, o),
    moveFile: (id, from, to, o) => request("POST", `/instances/${encodeURIComponent(id)}/files/move`, { from, to }, o),
    deleteFile: (id, path, o) =>
        request("DELETE", `/instances/${encodeURIComponent(id)}/files?path=${encodeURIComponent(path)}`, undefined, o),

    listUsers: (o) => request("GET", "/users", undefined, o),
    createUser: (username, password, role, o) => request("POST", "/users", { username, password, role }, o),
    updateUser: (id, changes, o) => request("PATCH", `/users/${encodeURIComponent(id)}`, changes, o),
    deleteUser: (id, o) => request("DELETE", `/users/${encodeURIComponent(id)}`, undefined, o),
    instanceUsers: (id, o) => request("GET", `/instances/${encodeURIComponent(id)}/users`, undefined, o),
    assign: (id, userID, o) =>
        request("PUT", `/instances/${encodeURIComponent(id)}/users/${encodeURIComponent(userID)}`, undefined, o),
    unassign: (id, userID, o) =>
        request("DELETE", `/instances/${encodeURIComponent(id)}/users/${encodeURIComponent(userID)}`, undefined, o),

    changePassword: (current, next, o) =>
        request("POST", "/auth/password", { current_password: current, new_password: next }, o),
    listSessions: (o) => request("GET", "/auth/sessions", undefined, o),
    revokeSession: (id, o) => request("DELETE", `/auth/sessions/${encodeURIComponent(id)}`, undefined, o),
    listTokens: (o) => request("GET", "/auth/tokens", undefined, o),
    createToken: (name, expiresInDays, o) => request("POST", "/auth/tokens",
        expiresInDays ? { name, expires_in_days: expiresInDays } : { name }, o),
    revokeToken: (id, o) => request("DELETE", `/auth/tokens/${encodeURIComponent(id)}`, undefined, o),

    /** filter: {actor, action, target, since, until, limit, before}; empty values are left out. */
    audit: (filter, o) => {
        const q = new URLSearchParams();
        for (const [key, value] of Object.entries(filter || {})) {
            if (value !== undefined && value !== null && value !== "") q.set(key, String(value));
        }
        const query = q.toString();
        return request("GET", query ? `/audit?${query}` : "/audit", undefined, o);
    },
};

/** A files route of an instance with its path: for downloads, uploads and the editor. */
export function filesURL(id, tail, path) {
    return `/api/v1/instances/${encodeURIComponent(id)}/files${tail}?path=${encodeURIComponent(path)}`;
}

/** The logs of an instance; `follow: 1` makes it an event stream (for EventSource). */
export function logsURL(id, { service = "", tail, follow } = {}) {
    const q = new URLSearchParams();
    if (service) q.set("service", service);
    if (tail !== undefined) q.set("tail", String(tail));
    if (follow) q.set("follow", "1");
    return `/api/v1/instances/${encodeURIComponent(id)}/logs?${q}`;
}

/** The WebSocket URL of an instance's VNC stream, on this origin (ws: or wss:). */
/** The terminal WebSocket; `session` re-attaches to a running shell. */
export function terminalURL(id, { cols, rows, session } = {}) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams();
    if (cols) query.set("cols", String(cols));
    if (rows) query.set("rows", String(rows));
    if (session) query.set("session", session);
    return `${scheme}//${location.host}/api/v1/instances/${encodeURIComponent(id)}/terminal?${query}`;
}

export function vncURL(id) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/v1/instances/${encodeURIComponent(id)}/vnc`;
}
