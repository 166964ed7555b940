#!/usr/bin/env python3
"""A stand-in for the OpenClaw gateway (`openclaw gateway run`), stdlib only, for tests.

HTTP probes and the WebSocket protocol share one loopback port, as in OpenClaw. Every frame
received is checked against OpenClaw's own generated schema (protocol.schema.json, with the
protocol-4 additions applied here), and so is every frame sent: a stand-in bug that would put
a field on the wire the real gateway never sends is logged as "schema violation" on stderr.
Behaviour switches (protocol 3/4, ticks, startup sidecars, pairing, noise) come from the
bundle's standin.json and OPENCLAW_STANDIN_* variables; see README.md."""
import copy
import http.server
import json
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ed25519  # noqa: E402
import schema  # noqa: E402
from gateway_config import (EXIT_CONFIG, ConfigError, UsageError, config_path, load_config,  # noqa: E402
                            load_settings, parse_args, secret)
from gateway_connect import Refused, connect, parse  # noqa: E402
from gateway_methods import READ, WRITE, Methods  # noqa: E402
from gateway_runs import now_ms, resolve_model  # noqa: E402
from ws import Closed, WebSocket, handshake_response  # noqa: E402

DEFAULT_PORT = 18789
ADMIN = "operator.admin"


def protocol_schema(version):
    """OpenClaw's schema plus what the stand-in knows the wire carries beyond it: `sessionKey` on
    agent events, and for protocol 4 the newer client ids/modes and `deltaText`/`replace`."""
    root = copy.deepcopy(schema.load())
    defs = root["definitions"]
    defs["AgentEvent"]["properties"]["sessionKey"] = {"type": "string", "minLength": 1}
    if version >= 4:
        client = defs["ConnectParams"]["properties"]["client"]["properties"]
        client["id"]["enum"] += ["openclaw-linux", "openclaw-worker"]
        client["mode"]["enum"] += ["worker"]
        defs["ChatEvent"]["properties"].update({"deltaText": {"type": "string"}, "replace": {"type": "boolean"}})
    return root


class Connection:
    def __init__(self, gateway, ws, sock):
        self.gateway, self.ws, self.sock = gateway, ws, sock
        self.id = uuid.uuid4().hex
        self.scopes, self.caps, self.client = [], [], None
        self.authed = False
        self.seq = 0
        self.lock = threading.Lock()

    def send(self, frame):
        kind = {"req": "RequestFrame", "res": "ResponseFrame", "event": "EventFrame"}[frame["type"]]
        self.gateway.problem(frame, kind, outgoing=True)
        self.ws.send_text(json.dumps(frame, separators=(",", ":")))

    def event(self, name, payload):
        with self.lock:  # per-connection seq must match the order frames go out
            frame = {"type": "event", "event": name, "payload": payload, "seq": self.seq}
            self.seq += 1
            self.send(frame)

    def has(self, scope):
        return scope in self.scopes or ADMIN in self.scopes or (scope == READ and WRITE in self.scopes)


class Gateway(Methods):
    METHODS = {"health": (None, None), "status": (None, None),
               "chat.send": (WRITE, "ChatSendParams"), "chat.history": (READ, "ChatHistoryParams"),
               "chat.abort": (WRITE, "ChatAbortParams"), "sessions.reset": (WRITE, "SessionsResetParams"),
               "sessions.list": (READ, "SessionsListParams"), "models.list": (READ, "ModelsListParams")}
    EVENT_SCHEMAS = {"chat": "ChatEvent", "agent": "AgentEvent", "tick": "TickEvent", "shutdown": "ShutdownEvent"}

    def __init__(self, config, settings, version, auth_mode, token, password, path):
        self.config, self.settings, self.version = config, settings, version
        self.auth_mode, self.token, self.password = auth_mode, token, password
        self.config_path, self.state_dir = path, os.path.dirname(path)
        self.schema = protocol_schema(settings["protocol"])
        self.validator = schema.Validator(self.schema)
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.connections = set()
        self.sessions, self.runs, self.finished = {}, {}, {}
        self.paired, self.device_tokens = set(), {}

    # -- helpers used by the handshake and runs
    def problem(self, value, definition, outgoing=False):
        try:
            self.validator.check(value, self.schema["definitions"][definition], "root")
            return None
        except schema.Invalid as e:
            if outgoing:
                print(f"[standin] schema violation in a sent {definition}: {e}", file=sys.stderr, flush=True)
            return str(e)

    def uptime_ms(self):
        return int((time.monotonic() - self.started) * 1000)

    def sidecars_remaining_ms(self):
        return max(0, self.settings["sidecarsMs"] - self.uptime_ms())

    def issue_device_token(self, device_id):
        token = secrets.token_urlsafe(24)
        self.device_tokens[token] = device_id
        return token

    def session(self, key):
        with self.lock:
            return self.sessions.setdefault(key, {"sessionId": str(uuid.uuid4()), "messages": [], "updatedAt": now_ms()})

    def record(self, key, messages):
        session = self.session(key)
        with self.lock:
            session["messages"].extend(messages)
            session["updatedAt"] = now_ms()

    def broadcast(self, name, payload, scope=None, only=None):
        """To every authenticated socket (no per-session filter, as in OpenClaw), or to `only`."""
        if name in self.EVENT_SCHEMAS:
            self.problem(payload, self.EVENT_SCHEMAS[name], outgoing=True)
        with self.lock:
            targets = [only] if only else list(self.connections)
        for conn in targets:
            if conn.authed and (scope is None or conn.has(scope)):
                try:
                    conn.event(name, payload)
                except Closed:
                    pass

    def run_finished(self, run):
        with self.lock:
            self.runs.pop(run.run_id, None)
            self.finished[run.run_id] = run

    # -- the socket's life
    def serve(self, ws, sock, headers, remote):
        conn = Connection(self, ws, sock)
        nonce = str(uuid.uuid4())
        sock.settimeout(10)  # a client that never sends connect is dropped
        try:
            conn.event("connect.challenge", {"nonce": nonce, "ts": now_ms()})
            first = ws.recv()
            frame = parse(first) if isinstance(first, str) else None
            try:
                hello = connect(self, conn, frame, nonce, remote, headers)
            except Refused as refused:
                if isinstance(frame, dict) and isinstance(frame.get("id"), str) and frame["id"]:
                    conn.send({"type": "res", "id": frame["id"], "ok": False, "error": refused.error})
                self._close(ws, refused.close_code, str(refused))
                return
            self.problem(hello, "HelloOk", outgoing=True)
            sock.settimeout(None)
            ws.max_message = hello["policy"]["maxPayload"]
            with conn.lock:  # registered before hello-ok goes out, yet no event can precede it
                conn.authed = True
                with self.lock:
                    self.connections.add(conn)
                conn.send({"type": "res", "id": frame["id"], "ok": True, "payload": hello})
            while True:
                self.dispatch(conn, ws.recv())
        except Closed:
            if not conn.authed and not ws.closed:
                ws.close(1008, "handshake timeout")
        finally:
            with self.lock:
                self.connections.discard(conn)
                self.idle.notify_all()

    def _close(self, ws, code, reason):
        ws.close(code, reason[:100])
        try:
            while True:
                ws.recv()
        except Closed:
            pass

    def dispatch(self, conn, text):
        frame = parse(text) if isinstance(text, str) else None
        if not isinstance(frame, dict) or frame.get("type") != "req":
            return  # newer clients send {type:"cancel"}; unknown frames are ignored
        if not isinstance(frame.get("id"), str) or not frame["id"]:
            return
        problem = self.problem(frame, "RequestFrame")
        method = frame.get("method")
        if problem:
            return self.fail(conn, frame, "INVALID_REQUEST", f"invalid request frame: {problem}")
        if method not in self.METHODS:
            return self.fail(conn, frame, "INVALID_REQUEST", f"unknown method: {method}")
        scope, params_schema = self.METHODS[method]
        if scope and not conn.has(scope):
            return self.fail(conn, frame, "FORBIDDEN", f"missing scope: {scope}",
                             {"code": "MISSING_SCOPE", "missingScope": scope})
        params = frame.get("params", {})
        problem = self.problem(params, params_schema) if params_schema else (
            None if params in ({}, None) else "root: unexpected params")
        if problem:
            return self.fail(conn, frame, "INVALID_REQUEST", f"invalid {method} params: {problem}")
        try:
            result = getattr(self, "m_" + method.replace(".", "_"))(conn, params or {})
        except Refused as e:
            return conn.send({"type": "res", "id": frame["id"], "ok": False, "error": e.error})
        conn.send({"type": "res", "id": frame["id"], "ok": True, "payload": result})

    def fail(self, conn, frame, code, message, details=None):
        error = {"code": code, "message": message, **({"details": details} if details else {})}
        conn.send({"type": "res", "id": frame["id"], "ok": False, "error": error})

    # -- lifecycle
    def tick_forever(self):
        while True:
            time.sleep(self.settings["tickMs"] / 1000)
            if self.settings["ticks"]:
                self.broadcast("tick", {"ts": now_ms()})

    def shutdown(self, reason, restart_ms=None):
        """The `shutdown` event, then close 1012 on every socket."""
        self.broadcast("shutdown", {"reason": reason, **({"restartExpectedMs": restart_ms} if restart_ms else {})})
        with self.lock:
            conns = list(self.connections)
        for conn in conns:
            conn.ws.close(1012, "service restart")
            try:
                conn.sock.settimeout(2)  # a peer that never answers the close is dropped
            except OSError:
                pass

    def wait_idle(self, timeout):
        """Until every socket finished its close handshake (exiting earlier would reset them)."""
        with self.idle:
            self.idle.wait_for(lambda: not self.connections, timeout)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openclaw-standin"

    def log_message(self, fmt, *args):
        pass

    def _json(self, status, body, head=False):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        gateway = self.server.gateway
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        if headers.get("upgrade", "").lower() == "websocket":
            response = None if path.startswith("/__openclaw__/") else handshake_response(headers)
            if response is None:
                return self._json(400, {"ok": False, "error": "bad websocket upgrade"})
            self.wfile.write(response)
            self.wfile.flush()
            self.close_connection = True
            gateway.serve(WebSocket(self.connection, self.rfile), self.connection, headers, self.client_address)
        elif path in ("/health", "/healthz"):
            self._json(200, {"ok": True, "status": "live"}, head)
        elif path in ("/ready", "/readyz"):
            ready = gateway.sidecars_remaining_ms() == 0
            self._json(200 if ready else 503, {"ok": ready, "status": "ready" if ready else "starting"}, head)
        else:
            self._json(404, {"ok": False, "error": "not found"}, head)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def package_version(defaults_path):
    manifest = os.path.join(os.path.dirname(defaults_path or ""), "package.json")
    try:
        with open(manifest, encoding="utf-8") as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "2026.x-standin"


def main(argv, defaults_path=None):
    version = package_version(defaults_path)
    if argv[:1] in (["--version"], ["-V"]):
        print(version)
        return 0
    try:
        opts = parse_args(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    path = config_path()
    try:
        settings = load_settings(defaults_path)
        config = load_config(path, opts["allowUnconfigured"])
        gw = config.get("gateway", {})
        auth_mode = opts.get("auth") or gw.get("auth", {}).get("mode", "token")
        bind = opts.get("bind") or gw.get("bind", "loopback")
        if bind != "loopback" and auth_mode == "none":
            raise ConfigError(f"Refusing to bind the gateway to {bind} without auth.")
    except ConfigError as e:
        print(f"[gateway] {e}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    port = opts.get("port", int(os.environ.get("OPENCLAW_GATEWAY_PORT") or gw.get("port", DEFAULT_PORT)))
    host = {"lan": "0.0.0.0", "custom": gw.get("customBindHost", "127.0.0.1")}.get(bind, "127.0.0.1")
    token = opts.get("token") or os.environ.get("OPENCLAW_GATEWAY_TOKEN") or secret(gw.get("auth", {}).get("token"))
    if auth_mode == "token" and not token:
        token = secrets.token_hex(24)  # what OpenClaw does: an ephemeral token nobody knows
        print("[gateway] no token configured: using an ephemeral one", flush=True)
    password = opts.get("password") or os.environ.get("OPENCLAW_GATEWAY_PASSWORD") or secret(gw.get("auth", {}).get("password"))
    stop_signals = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # threads inherit the mask; main waits for them
    try:
        server = Server((host, port), Handler)
    except OSError as e:
        print(f"[gateway] cannot listen on {host}:{port}: {e}", file=sys.stderr, flush=True)
        return 1
    gateway = Gateway(config, settings, version, auth_mode, token, password, path)
    server.gateway = gateway
    ed25519.preload()
    threading.Thread(target=server.serve_forever, args=(0.1,), name="http", daemon=True).start()
    threading.Thread(target=gateway.tick_forever, name="ticks", daemon=True).start()
    try:
        model = "/".join(resolve_model(config)[:2])
    except Exception:
        model = "none"
    print(f"[gateway] agent model: {model}; protocol {settings['protocol']}", flush=True)
    print(f"[gateway] listening on ws://{host}:{server.server_address[1]} (PID {os.getpid()})", flush=True)
    while True:
        sig = signal.sigwaitinfo(stop_signals).si_signo
        if sig == signal.SIGUSR1:
            gateway.shutdown("gateway restarting", 1500)
            continue
        gateway.shutdown("gateway stopping")
        gateway.wait_idle(3)
        server.shutdown()
        server.server_close()
        print("[gateway] stopped", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
