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


class Standin:
    """The stand-in gateway (and a fake provider) inside instance `iid`."""

    def __init__(self, daemon, admin, iid, chunk_delay=0.05):
        self.daemon, self.admin, self.iid = daemon, admin, iid
        home = daemon.data_dir / "instances" / str(iid) / "home"
        owner = home.stat().st_uid
        target = home / "standins"
        if not target.exists():
            shutil.copytree(STANDINS, target, ignore=shutil.ignore_patterns("__pycache__"))
            for path in [target, *target.rglob("*")]:
                os.chown(path, owner, owner)
        config = {"gateway": {"mode": "local", "port": GATEWAY_PORT, "bind": "loopback",
                              "auth": {"mode": "token", "token": gateway_token(daemon, iid)}},
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
        out = exec_in(self.admin, self.iid,
                      f"cd ~/standins && setsid python3 fake_llm.py --port {LLM_PORT} --key {LLM_KEY} "
                      f"--delay {self.chunk_delay} >~/llm.log 2>&1 </dev/null & echo $! > ~/llm.pid")
        assert out.get("exit_code", 0) == 0, out

    def start(self, **settings):
        """(Re)starts the gateway with OPENCLAW_STANDIN_<name> settings; returns once it listens."""
        self.stop()
        env = " ".join(f"OPENCLAW_STANDIN_{k}={v}" for k, v in settings.items())
        exec_in(self.admin, self.iid,
                f"cd ~ && rm -f gw.log && {env} setsid python3 standins/openclaw_gateway.py gateway run "
                f">gw.log 2>&1 </dev/null & echo $! > ~/gw.pid")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # The stand-in's own readiness line.
            if "listening on ws://" in self.log():
                return self
            time.sleep(0.05)
        raise AssertionError(f"the stand-in did not start: {self.log()}")

    def log(self):
        path = self.daemon.data_dir / "instances" / str(self.iid) / "home" / "gw.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def signal(self, name):
        exec_in(self.admin, self.iid, f"kill -{name} $(cat ~/gw.pid)")

    def stop(self):
        exec_in(self.admin, self.iid, "test -f ~/gw.pid && kill $(cat ~/gw.pid) 2>/dev/null; rm -f ~/gw.pid; true")


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
