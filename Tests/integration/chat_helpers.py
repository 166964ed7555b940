"""Shared by the chat tests: a browser-side chat socket on the daemon, and running the gateway
stand-in (and a fake LLM) inside a real instance, as the agent service will.

Until the `agent` service runs the stand-in from an installed bundle, `start_standin` starts it
through the exec API as the agent user: the files are copied into the instance's home, the
config carries the token the daemon derives (HMAC-SHA-256(secrets.key, "gateway-token:<id>")),
and the gateway listens on the instance's own loopback at 18789, where the daemon's link
connects through the instance's init.
"""
import hashlib
import hmac
import json
import os
import pathlib
import shutil
import time

import websocket

STANDINS = pathlib.Path(__file__).resolve().parent.parent / "standins"
GATEWAY_PORT = 18789
LLM_PORT = 18790
LLM_KEY = "sk-chat-test"


def gateway_token(daemon, iid):
    key = (daemon.data_dir / "secrets.key").read_bytes()
    return hmac.new(key, f"gateway-token:{iid}".encode(), hashlib.sha256).hexdigest()


def exec_in(admin, iid, script, user="agent", timeout_ms=20000):
    r = admin.post(f"/api/v1/instances/{iid}/exec", {"argv": ["sh", "-c", script], "user": user, "timeout_ms": timeout_ms})
    assert r.status_code == 200, r.text
    return r.json()


def spawn(admin, iid, name, command):
    """Starts `command` in the instance's home as a session of its own (the exec API kills what
    is left in the session of the command it ran), its output in ~/<name>.log, its pid in
    ~/<name>.pid; returns once the new session exists (the pid file is its signal)."""
    exec_in(admin, iid, f"cd ~ && rm -f {name}.pid {name}.log && "
                        f"setsid -f sh -c 'echo $$ > {name}.pid.tmp && mv {name}.pid.tmp {name}.pid && exec {command}' "
                        f">{name}.log 2>&1 </dev/null && while [ ! -s {name}.pid ]; do sleep 0.01; done")


class Standin:
    """The stand-in gateway (and a fake provider) inside instance `iid`."""

    def __init__(self, daemon, admin, iid, chunk_delay=0.05, token=None):
        self.daemon, self.admin, self.iid = daemon, admin, iid
        home = daemon.data_dir / "instances" / str(iid) / "home"
        owner = home.stat().st_uid
        target = home / "standins"
        if not target.exists():
            shutil.copytree(STANDINS, target, ignore=shutil.ignore_patterns("__pycache__"))
            for path in [target, *target.rglob("*")]:
                os.chown(path, owner, owner)
        config = {"gateway": {"mode": "local", "port": GATEWAY_PORT, "bind": "loopback",
                              "auth": {"mode": "token", "token": token or gateway_token(daemon, iid)}},
                  "agents": {"defaults": {"model": {"primary": "fake/fake-model"}}},
                  "models": {"mode": "merge", "providers": {"fake": {
                      "baseUrl": f"http://127.0.0.1:{LLM_PORT}/v1", "api": "openai-completions", "apiKey": LLM_KEY,
                      "models": [{"id": "fake-model", "name": "Fake"}]}}}}
        (home / ".openclaw").mkdir(exist_ok=True)
        (home / ".openclaw" / "openclaw.json").write_text(json.dumps(config))
        for path in (home / ".openclaw", home / ".openclaw" / "openclaw.json"):
            os.chown(path, owner, owner)
        self.chunk_delay = chunk_delay
        self._llm()

    def _llm(self):
        spawn(self.admin, self.iid, "llm",
              f"python3 -u standins/fake_llm.py --port {LLM_PORT} --key {LLM_KEY} --delay {self.chunk_delay}")
        self._wait_line("llm", "fake-llm listening on")

    def _wait_line(self, name, text):
        """Waits for a process's own readiness line in its log."""
        path = self.daemon.data_dir / "instances" / str(self.iid) / "home" / f"{name}.log"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if path.exists() and text in path.read_text(errors="replace"):
                return
            time.sleep(0.02)
        raise AssertionError(f"{name} did not start: {path.read_text(errors='replace') if path.exists() else ''}")

    def start(self, **settings):
        """(Re)starts the gateway with OPENCLAW_STANDIN_<name> settings; returns once it listens."""
        self.stop()
        env = " ".join(f"OPENCLAW_STANDIN_{k}={v}" for k, v in settings.items())
        spawn(self.admin, self.iid, "gw", f"env {env} python3 -u standins/openclaw_gateway.py gateway run")
        self._wait_line("gw", "listening on ws://")
        return self

    def log(self):
        path = self.daemon.data_dir / "instances" / str(self.iid) / "home" / "gw.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def signal(self, name):
        exec_in(self.admin, self.iid, f"kill -{name} $(cat ~/gw.pid)")

    def stop(self):
        exec_in(self.admin, self.iid, "test -f ~/gw.pid && kill $(cat ~/gw.pid) 2>/dev/null; rm -f ~/gw.pid; true")

    def restart_llm(self, chunk_delay):
        exec_in(self.admin, self.iid, "kill $(cat ~/llm.pid)")
        self.chunk_delay = chunk_delay
        self._llm()


class Chat:
    """One browser chat socket: every message received, in order."""

    def __init__(self, client, iid, origin=None):
        url = client.daemon.base_url.replace("http://", "ws://") + f"/api/v1/instances/{iid}/chat"
        cookie = f"claworc_session={client.http.cookies.get('claworc_session')}"
        self.ws = websocket.create_connection(url, cookie=cookie, timeout=30, origin=origin or client.daemon.base_url)
        self.messages = []
        self.seen = 0
        self.close_code = None

    def send(self, type_, **fields):
        self.ws.send(json.dumps({"type": type_, **fields}))

    def _recv(self, deadline, what):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {what}; got {self.messages[-20:]}"
        self.ws.settimeout(left)
        try:
            opcode, data = self.ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            raise AssertionError(f"closed {self.close_code} while waiting for {what}; got {self.messages[-20:]}")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            self.messages.append(json.loads(data))

    def next(self, predicate, timeout=20, what="message"):
        """The first message after the last one handed out that matches predicate."""
        deadline = time.monotonic() + timeout
        while True:
            while self.seen < len(self.messages):
                m = self.messages[self.seen]
                self.seen += 1
                if predicate(m):
                    return m
            self._recv(deadline, what)

    def of_type(self, type_, **kw):
        return self.next(lambda m: m["type"] == type_, what=type_, **kw)

    def ready(self, timeout=20):
        return self.next(lambda m: m["type"] == "status" and m["agent"] == "ready", timeout, "status ready")

    def run(self, text, timeout=20):
        """Sends `text`; the run's messages (deltas may come before `started`) up to its end."""
        mark = len(self.messages)
        self.send("send", text=text)
        run_id = self.of_type("started", timeout=timeout)["runId"]
        deadline = time.monotonic() + timeout
        while True:
            got = [(i, m) for i, m in enumerate(self.messages) if i >= mark and m.get("runId") == run_id
                   and m["type"] != "started"]
            ends = [i for i, m in got if m["type"] in ("final", "error", "aborted")]
            if ends:
                self.seen = max(self.seen, ends[0] + 1)
                return run_id, [m for i, m in got if i <= ends[0]]
            self._recv(deadline, f"the end of run {run_id}")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
