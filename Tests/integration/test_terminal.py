"""The instance terminal: a WebSocket to a login shell on a pty inside a real running instance.

One daemon for the module (instances with no services: a terminal needs only the init), with
a short idle timeout for detached sessions. Plain users do not exist in the API yet, so the
test adds them to the daemon's SQLite file directly, with the admin's password hash (logging
in as them is then an ordinary login), and assigns them to instances there too.
"""
import json
import re
import shutil
import sqlite3
import tempfile
import pathlib
import time

import pytest
import websocket

from claworc_harness import ADMIN, Client, Daemon, bootstrap_admin

IDLE_MS = 3000


@pytest.fixture(scope="module")
def env():
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-test-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data", extra_args=["--instance-services", "none",
                                                "--unsafe-test-terminal-idle-ms", str(IDLE_MS)]).start()
    admin = bootstrap_admin(daemon)
    iid = admin.create("term")["id"]
    other_iid = admin.create("term-other")["id"]
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    admin.wait_for(iid, lambda i: i["state"] == "running", what="running")
    bob = add_user(daemon, "bob", assigned=[iid])
    carol = add_user(daemon, "carol", assigned=[other_iid])
    yield {"daemon": daemon, "admin": admin, "iid": iid, "bob": bob, "carol": carol}
    admin.post(f"/api/v1/instances/{iid}/stop")
    daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


def add_user(daemon, name, assigned):
    db = sqlite3.connect(daemon.data_dir / "claworc.db", timeout=10)
    with db:
        db.execute("INSERT INTO users (username, password_hash, role) "
                   "SELECT ?, password_hash, 'user' FROM users WHERE username = ?", (name, ADMIN[0]))
        uid = db.execute("SELECT id FROM users WHERE username = ?", (name,)).fetchone()[0]
        for iid in assigned:
            db.execute("INSERT INTO instance_users (instance_id, user_id) VALUES (?, ?)", (iid, uid))
    db.close()
    client = Client(daemon)
    client.login(name, ADMIN[1])
    return client


class Term:
    """One attached terminal: its session id, its output so far, its control messages."""

    def __init__(self, client, iid, query="", origin=None):
        url = client.daemon.base_url.replace("http://", "ws://") + f"/api/v1/instances/{iid}/terminal{query}"
        cookie = f"claworc_session={client.http.cookies.get('claworc_session')}"
        kw = {"origin": origin} if origin else {}
        self.ws = websocket.create_connection(url, cookie=cookie, timeout=20, **kw)
        self.output = b""
        self.controls = []
        opcode, data = self.ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT, (opcode, data)
        first = json.loads(data)
        assert first["type"] == "session" and re.fullmatch(r"[0-9a-f]{32}", first["id"]), first
        self.sid = first["id"]

    def send(self, text):
        self.ws.send_binary(text.encode())

    def control(self, message):
        self.ws.send(json.dumps(message))

    def pump(self, done, timeout=20, what="output"):
        """Reads until done(self) holds; the pty's own output is the readiness signal."""
        deadline = time.monotonic() + timeout
        while not done(self):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {what}; output so far: {self.output[-2000:]!r}, controls {self.controls}"
            self.ws.settimeout(left)
            try:
                opcode, data = self.ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            if opcode == websocket.ABNF.OPCODE_BINARY:
                self.output += data
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                self.controls.append(json.loads(data))
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                assert done(self), f"closed before {what}; output {self.output[-2000:]!r}, controls {self.controls}"
                return

    def run(self, command, pattern):
        """Types a command and waits for a line of its output matching pattern (bytes regex; a
        leading ^ also matches after the carriage return bash's bracketed-paste reset ends with)."""
        start = len(self.output)
        self.send(command + "\n")
        if pattern.startswith(b"^"):
            pattern = rb"(?:^|\r)" + pattern[1:]
        rx = re.compile(pattern, re.M)
        self.pump(lambda t: rx.search(t.output[start:]), what=f"{pattern!r} after {command!r}")
        return rx.search(self.output[start:])

    def close(self):
        self.ws.close()


class Refused(Exception):
    pass


def refused(client, iid, query="", origin=None):
    """The status a refused terminal reports: its close code minus 4000 (Hummingbird answers
    every refused upgrade with a bare 400, so refusals come as close codes before anything
    of the instance is opened, as on the VNC relay)."""
    url = client.daemon.base_url.replace("http://", "ws://") + f"/api/v1/instances/{iid}/terminal{query}"
    session = client.http.cookies.get("claworc_session")
    kw = {"origin": origin} if origin else {}
    ws = websocket.create_connection(url, cookie=f"claworc_session={session}" if session else None, timeout=20, **kw)
    try:
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE, f"not refused: {opcode} {data!r}"
        code = int.from_bytes(data[:2], "big")
        assert 4000 < code < 5000, code
        return code - 4000
    finally:
        ws.close()


def test_a_shell_answers_as_the_agent(env):
    t = Term(env["admin"], env["iid"])
    try:
        t.run("echo $((6*7))", rb"^42\r?$")
        assert t.run("id -u", rb"^(\d+)\r?$").group(1) == b"1000"
        assert t.run("tty", rb"^(/dev/pts/\d+)\r?$"), "the shell has a controlling terminal"
    finally:
        t.close()


def test_root_shell_for_admins_only(env):
    t = Term(env["admin"], env["iid"], "?user=root")
    try:
        assert t.run("id -u", rb"^(\d+)\r?$").group(1) == b"0"
    finally:
        t.close()
    assert refused(env["bob"], env["iid"], "?user=root") == 403
    assert refused(env["admin"], env["iid"], "?user=nobody") == 400


def test_access_is_checked_before_the_upgrade(env):
    assert refused(env["carol"], env["iid"]) == 404, "a user not assigned to the instance does not see it"
    assert refused(env["admin"], env["iid"], origin="http://evil.example") == 403
    anonymous = Client(env["daemon"])
    assert refused(anonymous, env["iid"]) == 401
    # A plain user assigned to the instance gets an agent shell.
    t = Term(env["bob"], env["iid"])
    try:
        assert t.run("id -u", rb"^(\d+)\r?$").group(1) == b"1000"
    finally:
        t.close()


def test_resize_reaches_the_pty(env):
    t = Term(env["admin"], env["iid"], "?cols=100&rows=30")
    try:
        assert t.run("stty size", rb"^(\d+ \d+)\r?$").group(1) == b"30 100"
        t.control({"type": "resize", "cols": 132, "rows": 43})
        # The resize and the next keystrokes travel on different paths; ask until it shows.
        deadline = time.monotonic() + 10
        while (size := t.run("stty size", rb"^(\d+ \d+)\r?$").group(1)) != b"43 132":
            assert time.monotonic() < deadline, f"size stayed {size!r}"
        t.control({"type": "bogus"})
        t.ws.send("not json")
        t.run("echo still-$((1+1))", rb"^still-2\r?$")
    finally:
        t.close()


def test_exit_code_is_reported(env):
    t = Term(env["admin"], env["iid"])
    t.send("exit 3\n")
    t.pump(lambda t: any(c.get("type") == "exit" for c in t.controls), what="exit message")
    assert {"type": "exit", "code": 3} in t.controls
    t.close()
    # The session is gone with its shell.
    assert refused(env["admin"], env["iid"], f"?session={t.sid}") == 404


def test_reattach_replays_scrollback_only_for_its_owner(env):
    t = Term(env["admin"], env["iid"])
    t.run("echo marker-$((40+2))", rb"^marker-42\r?$")
    t.close()
    assert refused(env["bob"], env["iid"], f"?session={t.sid}") == 404, "another user attached to the admin's session"
    again = Term(env["admin"], env["iid"], f"?session={t.sid}")
    try:
        assert again.sid == t.sid
        again.pump(lambda x: b"marker-42" in x.output, what="scrollback replay")
        assert again.run("echo $$-alive", rb"^\d+-alive\r?$")
    finally:
        again.close()


def test_two_terminals_are_independent(env):
    a = Term(env["admin"], env["iid"])
    b = Term(env["admin"], env["iid"])
    try:
        assert a.sid != b.sid
        a.run("export ONLY_HERE=a; echo set-$ONLY_HERE", rb"^set-a\r?$")
        assert b.run("echo got-${ONLY_HERE:-none}", rb"^got-(\w+)\r?$").group(1) == b"none"
        pa = a.run("echo pid-$$", rb"^pid-(\d+)\r?$").group(1)
        pb = b.run("echo pid-$$", rb"^pid-(\d+)\r?$").group(1)
        assert pa != pb
        assert b"set-a" not in b.output
    finally:
        a.close()
        b.close()


def shell_alive(admin, iid, pid):
    r = admin.post(f"/api/v1/instances/{iid}/exec", {"argv": ["kill", "-0", pid], "user": "root"})
    assert r.status_code == 200, r.text
    return r.json()["exit_code"] == 0


def test_a_detached_session_ends_after_the_idle_timeout(env):
    admin, iid = env["admin"], env["iid"]
    t = Term(admin, iid)
    pid = t.run("echo pid-$$", rb"^pid-(\d+)\r?$").group(1).decode()
    t.close()
    # Re-attaching re-arms the timer; the session lives as long as someone is attached.
    held = Term(admin, iid, f"?session={t.sid}")
    held.pump(lambda x: f"pid-{pid}".encode() in x.output, what="replay")
    time.sleep(IDLE_MS / 1000 + 1)   # nothing signals "the timeout did not fire": wait past it
    held.run("echo held-$((3+4))", rb"^held-7\r?$")
    held.close()
    # Watched without attaching (an attach would re-arm the timer): the shell goes with its session.
    deadline = time.monotonic() + IDLE_MS / 1000 + 20
    while shell_alive(admin, iid, pid):
        assert time.monotonic() < deadline, "the detached session's shell is still alive"
        time.sleep(0.2)
    assert refused(admin, iid, f"?session={t.sid}") == 404


def test_shells_outlive_a_daemon_restart(tmp_path):
    """`kill -9` of the daemon leaves the shells running (the init holds their ptys); the next
    daemon takes them back: the same shell, with its state, for the same user only, resized,
    reporting its exit, and hung up by the idle timeout as before."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-term-restart-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data", extra_args=["--instance-services", "none",
                                                "--unsafe-test-terminal-idle-ms", str(IDLE_MS)]).start()
    try:
        admin = bootstrap_admin(daemon)
        iid = admin.create("term-restart")["id"]
        assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
        admin.wait_for(iid, lambda i: i["state"] == "running", what="running")
        bob = add_user(daemon, "bob", assigned=[iid])
        kept, ending = Term(bob, iid), Term(bob, iid)
        pid = kept.run("export MARK=kept-$((6*7)); echo pid-$$", rb"^pid-(\d+)\r?$").group(1)
        ending.run("echo other-$$", rb"^other-\d+\r?$")

        daemon.kill()
        daemon.start()
        # Taken back before the daemon listens: no wait needed once it answers.
        took = daemon.wait_for_log("took back running terminals")[-1]
        assert "count=2" in took, took
        print(f"terminals taken back: {took}")

        assert refused(admin, iid, f"?session={kept.sid}") == 404, "another user attached to bob's shell"
        again = Term(bob, iid, f"?session={kept.sid}")
        assert again.sid == kept.sid
        got = again.run("echo $MARK-$$", rb"^kept-42-(\d+)\r?$")
        assert got.group(1) == pid, "a new shell instead of the one that ran before the restart"
        again.control({"type": "resize", "cols": 101, "rows": 33})
        again.run("stty size", rb"^33 101\r?$")

        other = Term(bob, iid, f"?session={ending.sid}")
        other.send("exit 7\n")
        other.pump(lambda t: any(c.get("type") == "exit" for c in t.controls), what="exit message")
        assert {"type": "exit", "code": 7} in other.controls, other.controls
        other.close()

        # Detached: the idle timeout hangs the shell up through the init, which holds its pty too.
        again.close()
        deadline = time.monotonic() + IDLE_MS / 1000 + 20
        while shell_alive(admin, iid, pid.decode()):
            assert time.monotonic() < deadline, "the idle session's shell outlived its timeout"
            time.sleep(0.2)   # nothing announces a process's end to an API client
        assert refused(bob, iid, f"?session={kept.sid}") == 404
    finally:
        if daemon.proc is None:
            daemon.start()
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_stopping_the_instance_ends_its_sessions(env):
    """Last in the module: it stops the shared instance."""
    admin, iid = env["admin"], env["iid"]
    t = Term(admin, iid)
    t.run("echo before-stop-$((1+1))", rb"^before-stop-2\r?$")
    assert admin.post(f"/api/v1/instances/{iid}/stop").status_code == 200
    t.pump(lambda x: any(c.get("type") == "exit" for c in x.controls), timeout=60, what="exit on stop")
    assert {"type": "exit", "code": None} in t.controls, t.controls
    t.close()
    assert refused(admin, iid, f"?session={t.sid}") == 404
    assert refused(admin, iid) == 409, "a stopped instance opens no terminal"
