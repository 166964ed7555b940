"""Test-side helpers for the gateway stand-in: start it as a process (as an instance would run
`openclaw gateway run`), and a small protocol client over websocket-client that signs a device
identity the way OpenClaw's clients do."""
import base64
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import uuid

import websocket

HERE = pathlib.Path(__file__).resolve().parent
GATEWAY = HERE / "openclaw_gateway.py"
# Debian's interpreter with -S (no site-packages): proves the stand-in is stdlib-only, as it must
# be inside an instance, and exercises the pure-Python Ed25519 verifier.
PYTHON = ["/usr/bin/python3", "-S"] if os.path.exists("/usr/bin/python3") else [sys.executable, "-S"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def config(token="tok", provider=None, model="fake-model", extra=None):
    """A minimal openclaw.json like the appliance writes; `provider` = (api, baseUrl, apiKey)."""
    cfg = {"gateway": {"mode": "local", "port": 0, "bind": "loopback", "auth": {"mode": "token", "token": token}}}
    if provider:
        api, base, key = provider
        cfg["agents"] = {"defaults": {"model": {"primary": f"fake/{model}"}}}
        cfg["models"] = {"mode": "merge", "providers": {"fake": {"baseUrl": base, "api": api, "apiKey": key,
                                                                 "models": [{"id": model, "name": "Fake"}]}}}
    cfg.update(extra or {})
    return cfg


class GatewayProcess:
    """`openclaw gateway run` with HOME in `home`; ready once it logged its listening address."""

    def __init__(self, home, cfg, settings=None, argv=None, command=None):
        self.home = pathlib.Path(home)
        (self.home / ".openclaw").mkdir(parents=True, exist_ok=True)
        if cfg is not None:
            text = cfg if isinstance(cfg, str) else json.dumps(cfg)
            (self.home / ".openclaw" / "openclaw.json").write_text(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "HOME"))}
        env["HOME"] = str(self.home)
        for key, value in (settings or {}).items():
            env["OPENCLAW_STANDIN_" + key] = str(value)
        cmd = command or [*PYTHON, str(GATEWAY)]
        self.proc = subprocess.Popen([*cmd, *(argv or ["gateway", "run"])], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines, self.port = [], None
        self.stderr = ""

    def wait_listening(self, timeout=20):
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.lines.append(line)
            if "listening on ws://" in line:
                self.port = int(line.split("ws://")[1].split()[0].rsplit(":", 1)[1])
                threading.Thread(target=self._drain, daemon=True).start()
                return self
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"the gateway did not start: {self.lines} {self.finish()}")

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def finish(self, timeout=10):
        """Exit code once the process ended (it is not signalled here); stderr is kept."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.stderr = self.proc.stderr.read()
        if self.port is None:
            self.lines += self.proc.stdout.readlines()
        return code

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.finish()
        assert "schema violation" not in self.stderr, self.stderr
        return code

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"


class Device:
    """A persistent Ed25519 identity, signed as packages/gateway-client/src/device-auth.ts does."""

    def __init__(self):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.id = hashlib.sha256(self.public).hexdigest()

    def sign(self, params, nonce, signed_at, version="v3"):
        c = params["client"]
        fields = [version, self.id, c["id"], c["mode"], params.get("role", "operator"), ",".join(params.get("scopes", [])),
                  str(signed_at), (params.get("auth") or {}).get("token", ""), nonce]
        if version == "v3":
            fields += [c.get("platform", "").strip().lower(), c.get("deviceFamily", "").strip().lower()]
        return {"id": self.id, "publicKey": b64url(self.public), "signature": b64url(self.key.sign("|".join(fields).encode())),
                "signedAt": signed_at, "nonce": nonce}


ALL_SCOPES = ["operator.read", "operator.write", "operator.admin", "operator.approvals"]


class Client:
    """One gateway socket. Every event received is in `seen` (arrival order); `event()` hands out
    each one at most once, so waiting for one event never loses another."""
    opened = []  # so a fixture can close them all before stopping the gateway

    @classmethod
    def close_all(cls):
        while cls.opened:
            cls.opened.pop().close()

    def __init__(self, port, token="tok", device=None, scopes=ALL_SCOPES, caps=("tool-events",), protocol=(3, 4),
                 client=None, extra=None, tamper=None, headers=None, sign="v3"):
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/gateway", timeout=10, header=headers or [])
        Client.opened.append(self)
        self.challenge = json.loads(self.ws.recv())
        self.backlog = []  # received, not yet handed out by event()
        self.seen = []
        self.close_code = None
        nonce = self.challenge["payload"]["nonce"]
        params = {"minProtocol": protocol[0], "maxProtocol": protocol[1],
                  "client": client or {"id": "gateway-client", "version": "1.0.0", "platform": "linux", "mode": "backend"},
                  "role": "operator", "scopes": list(scopes), "caps": list(caps)}
        if token is not None:
            params["auth"] = {"token": token}
        if device:
            params["device"] = device.sign(params, nonce, self.challenge["payload"]["ts"], sign)
        params.update(extra or {})
        if tamper:
            tamper(params)
        self.hello = self.request("connect", params)

    def send(self, frame):
        self.ws.send(json.dumps(frame))

    def request(self, method, params=None):
        ident = str(uuid.uuid4())
        frame = {"type": "req", "id": ident, "method": method}
        if params is not None:
            frame["params"] = params
        self.send(frame)
        while True:
            msg = self.next_frame()
            if msg is None:
                raise AssertionError(f"closed {self.close_code} while waiting for {method}")
            if msg["type"] == "res" and msg["id"] == ident:
                return msg
            self._keep(msg)

    def next_frame(self):
        """The next frame, or None once the server closed (close_code set)."""
        opcode, data = self.ws.recv_data(control_frame=True)
        while opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            opcode, data = self.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            return None
        return json.loads(data)

    def wait_close(self):
        while self.close_code is None:
            frame = self.next_frame()
            if frame is not None:
                self._keep(frame)
        return self.close_code

    def _keep(self, frame):
        self.seen.append(frame)
        self.backlog.append(frame)

    def event(self, predicate, timeout=15):
        """The first event not handed out yet that matches predicate, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        for i, frame in enumerate(self.backlog):
            if frame.get("type") == "event" and predicate(frame):
                return self.backlog.pop(i)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching event within {timeout}s")
                self.ws.settimeout(remaining)
                frame = self.next_frame()
                if frame is None:
                    raise AssertionError(f"closed {self.close_code} while waiting for an event")
                self.seen.append(frame)
                if frame.get("type") == "event" and predicate(frame):
                    return frame
                self.backlog.append(frame)
        except websocket.WebSocketTimeoutException:
            raise AssertionError(f"no matching event within {timeout}s")
        finally:
            self.ws.settimeout(10)

    def run_events(self, run_id, timeout=15):
        """Every `agent`/`chat` event of run_id up to its terminal chat and lifecycle events."""
        got, chat_done, life_done = [], False, False
        while not (chat_done and life_done):
            frame = self.event(lambda f: f["event"] in ("agent", "chat") and f["payload"]["runId"] == run_id, timeout)
            got.append(frame)
            p = frame["payload"]
            chat_done |= frame["event"] == "chat" and p["state"] in ("final", "error", "aborted")
            life_done |= frame["event"] == "agent" and p["stream"] == "lifecycle" and p["data"]["phase"] in ("end", "error")
        return got

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
