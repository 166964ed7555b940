"""The test harness: a real `claworc serve` on loopback with its own data dir and SQLite file,
a JSON client for it, and helpers that look inside instances through /proc and nsenter.

Test modules import from here (never from a conftest: pytest swaps `conftest` in sys.modules
as it loads each directory's). Nothing is mocked.
"""
import os
import pathlib
import re
import select
import signal
import subprocess
import threading
import time

import requests

def _become_subreaper():
    """Instances outlive their daemon: an init whose daemon a test killed is reparented to the
    nearest subreaper. Without one it goes to the host's PID 1, which may never reap it (as on
    the build machines), so the test process takes them and reaps them (`reap_orphaned_inits`)."""
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_become_subreaper()


def reap_orphaned_inits():
    """Reaps exited inits that came to this process when their daemon went (only those: other
    children belong to subprocess handles that reap their own)."""
    me = str(os.getpid()).encode()
    for pid in host_pids():
        stat = read_proc(pid, "stat") or b""
        fields = stat.rsplit(b")", 1)[-1].split()
        if b"(memfd:claworc-i" in stat and len(fields) > 1 and fields[0] == b"Z" and fields[1] == me:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("CLAWORC_BIN", ROOT / ".build" / "debug" / "claworc"))
LISTENING = re.compile(r"claworc listening on (https?)://[^ ]*:(\d+)\s*$")
ADMIN = ("admin", "correct-horse-battery")


class Daemon:
    """One `claworc serve` process; restartable on the same data dir."""

    started = 0
    # Notified whenever any daemon's output reaches its log file.
    logged = threading.Condition()

    def __init__(self, data_dir: pathlib.Path, extra_args=()):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        # Test instances get no route out unless a test gives one (to its own test hosts).
        if "--default-network" not in self.extra_args:
            self.extra_args += ["--default-network", "none"]
        # Daemons side by side (a module's shared one and a test's own, or two test runs) hand
        # out id slots apart: starting an instance kills whatever still runs in its slot's range.
        if "--unsafe-test-first-slot" not in self.extra_args:
            Daemon.started += 1
            bucket = (os.getpid() * 7 + Daemon.started * 13) % 250
            self.extra_args += ["--unsafe-test-first-slot", str(1 + 64 * bucket)]
        self.proc = None
        self.port = None
        self.log_path = data_dir.parent / (data_dir.name + ".daemon.log")

    @property
    def base_url(self):
        return f"{getattr(self, 'scheme', 'http')}://127.0.0.1:{self.port}"

    def start(self, timeout=30, same_port=False):
        """Starts the daemon; `same_port` binds the port of the previous run again (a browser
        page that stayed open reconnects to the same origin)."""
        log = open(self.log_path, "ab")
        port = self.port if same_port and self.port else 0
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(self.data_dir), *self.extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._log = log
        deadline = time.monotonic() + timeout
        buf = b""
        # Readiness signal: the daemon logs the address it bound once it accepts connections.
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            log.write(chunk)
            log.flush()
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                m = LISTENING.search(line)
                if m:
                    self.scheme, self.port = m.group(1), int(m.group(2))
                    self._drain_in_background()
                    return self
        raise RuntimeError(f"daemon did not start; output:\n{buf.decode(errors='replace')}")

    def _drain_in_background(self):
        # Keep reading the daemon's output into its log file so it never blocks on a full pipe.
        # The file lags the daemon by this thread's next turn: `wait_for_log` waits for a line
        # on the pump's signal instead of reading the file too early.
        def pump(stream, sink):
            for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
                with Daemon.logged:
                    sink.write(chunk)
                    sink.flush()
                    Daemon.logged.notify_all()

        threading.Thread(target=pump, args=(self.proc.stdout, self._log), daemon=True).start()

    def wait_for_log(self, pattern, count=1, timeout=20):
        """The log's lines matching the regex `pattern` once there are `count` of them (the
        daemon has written them; the pump may not have yet). Fails with the log's tail."""
        deadline = time.monotonic() + timeout
        with Daemon.logged:
            while True:
                lines = [line for line in self.log_text().splitlines() if re.search(pattern, line)]
                left = deadline - time.monotonic()
                if len(lines) >= count or left <= 0:
                    break
                Daemon.logged.wait(left)
        assert len(lines) >= count, (f"{count} log line(s) matching {pattern!r} expected, {len(lines)} in {timeout} s; "
                                     "the log ends:\n" + "\n".join(self.log_text().splitlines()[-30:]))
        return lines

    def stop(self, timeout=60, keep_instances=False):
        """Stops the daemon. Instances outlive it (stopping one is an API action), so unless
        `keep_instances`, its running instances are stopped through the API first: a test's
        teardown leaves nothing running."""
        if self.proc and self.proc.poll() is None:
            if not keep_instances:
                self.stop_instances()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        reap_orphaned_inits()

    def kill(self):
        """SIGKILL: the daemon gets no chance to do anything; its instances run on."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def admin_session(self):
        """A requests session of the first admin, minted in the daemon's database (as a login
        would store it) so that teardown needs no password a test may have changed."""
        import hashlib
        import secrets
        import sqlite3
        db = sqlite3.connect(self.data_dir / "claworc.db", timeout=30)
        try:
            row = db.execute("SELECT id FROM users WHERE role = 'admin' AND disabled = 0 ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            token = secrets.token_hex(32)   # the daemon accepts only 64 hex digits
            now = int(time.time())
            db.execute("INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
                       (hashlib.sha256(token.encode()).hexdigest(), row[0], now, now + 3600, now))
            db.commit()
        finally:
            db.close()
        session = requests.Session()
        session.verify, session.trust_env = False, False   # a test daemon's own self-signed certificate
        session.cookies.set("claworc_session", token)
        session.headers["Origin"] = self.base_url   # cookie-authenticated changes need it
        return session

    def stop_instances(self):
        """Stops every instance of this daemon that is not stopped, in parallel."""
        import concurrent.futures
        session = self.admin_session() if (self.data_dir / "claworc.db").exists() else None
        if session is None:
            return
        r = session.get(self.base_url + "/api/v1/instances", timeout=30)
        r.raise_for_status()
        listed = r.json()
        listed = listed.get("instances", listed) if isinstance(listed, dict) else listed
        ids = [i["id"] for i in listed if i["state"] in ("running", "failed", "starting")]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda iid: session.post(f"{self.base_url}/api/v1/instances/{iid}/stop", timeout=60), ids))

    def setup_code(self):
        return (self.data_dir / "setup-code").read_text().strip()

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Client:
    """requests.Session bound to a daemon, with JSON helpers."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.http = requests.Session()
        # As the dashboard's own pages: the daemon refuses cookie-authenticated changes whose
        # Origin is foreign or missing (cross-site request forgery).
        self.http.headers["Origin"] = daemon.base_url

    def url(self, path):
        # A restarted daemon listens on a new port: the pages' origin follows it.
        self.http.headers["Origin"] = self.daemon.base_url
        return self.daemon.base_url + path

    def get(self, path, **kw):
        return self.http.get(self.url(path), timeout=30, **kw)

    def post(self, path, json=None, **kw):
        return self.http.post(self.url(path), json=json, timeout=60, **kw)

    def delete(self, path, **kw):
        return self.http.delete(self.url(path), timeout=60, **kw)

    def login(self, username=ADMIN[0], password=ADMIN[1]):
        r = self.post("/api/v1/auth/login", {"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r

    def create(self, name):
        r = self.post("/api/v1/instances", {"name": name})
        assert r.status_code == 201, r.text
        return r.json()

    def instance(self, iid):
        r = self.get(f"/api/v1/instances/{iid}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_for(self, iid, predicate, timeout=60, what="condition"):
        """Polls the instance's reported state until predicate(instance) holds.

        The daemon's service states come from the init's readiness checks (Xvfb's displayfd,
        TCP accepts), so this waits on real readiness signals, not on elapsed time."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.instance(iid)
            if predicate(last):
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last state: {last}")

    def wait_all_services_ready(self, iid, timeout=60, agent=False):
        """Every service ready; the `agent` too only when asked: without an installed bundle
        (most tests install none) it is `failed` by design."""
        return self.wait_for(
            iid,
            lambda i: i["state"] == "running" and i["services"]
            and all(s["state"] == "ready" for s in i["services"] if agent or s["name"] != "agent"),
            timeout, "all services ready" + (" (agent included)" if agent else ""))


def bootstrap_admin(daemon: Daemon) -> Client:
    client = Client(daemon)
    r = client.post("/api/v1/setup", {"code": daemon.setup_code(), "username": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    return client


# ---- helpers for looking inside instances -------------------------------------------------

def host_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def read_proc(pid, name):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return None


def init_pid(daemon: Daemon, hostname: str):
    """Host pid of the init of the instance named `hostname` (a child of the daemon)."""
    for pid in host_pids():
        status = read_proc(pid, "status")
        cmdline = read_proc(pid, "cmdline")
        if not status or not cmdline or not cmdline.startswith(b"claworc-init\0__init"):
            continue
        ppid = int(re.search(rb"PPid:\s+(\d+)", status).group(1))
        if ppid != daemon.proc.pid:
            continue
        try:
            uts = subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True, text=True).stdout.strip()
        except OSError:
            continue
        if uts == hostname:
            return pid
    raise AssertionError(f"no init process for instance {hostname}")


def host_pid_of(init: int, ns_pid: int):
    """Maps a pid inside an instance (as the API reports it) to the host pid."""
    pidns = os.readlink(f"/proc/{init}/ns/pid")
    for pid in host_pids():
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != pidns:
                continue
        except OSError:
            continue
        status = read_proc(pid, "status") or b""
        m = re.search(rb"NSpid:\s+([\d\s]+)\n", status)
        if m and int(m.group(1).split()[-1]) == ns_pid:
            return pid
    raise AssertionError(f"pid {ns_pid} of the instance not found on the host")


def run_inside(init: int, *args, namespaces=("-a",)):
    """Runs a command inside the instance's namespaces (as root of the host, for observation)."""
    return subprocess.run(["nsenter", "-t", str(init), *namespaces, *args], capture_output=True, text=True, timeout=60)


def processes_in_pidns(pidns_link: str):
    found = []
    for pid in host_pids():
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") == pidns_link:
                found.append(pid)
        except OSError:
            pass
    return found


def id_base(slot):
    return 0x1000_0000 + slot * 65536   # InstanceIDs.idBase


def inits_of(daemon: Daemon):
    """{hostname: host pid} of every init in this daemon's id slots, whoever its parent is
    (after a restart the inits are no longer the daemon's children)."""
    first = int(daemon.extra_args[daemon.extra_args.index("--unsafe-test-first-slot") + 1])
    found = {}
    for pid in host_pids():
        cmdline = read_proc(pid, "cmdline")
        status = read_proc(pid, "status")
        if not cmdline or not status or not cmdline.startswith(b"claworc-init\0__init"):
            continue
        uid = int(re.search(rb"Uid:\s+(\d+)", status).group(1))
        if not id_base(first) <= uid < id_base(first + 64):
            continue
        hostname = subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True,
                                  text=True).stdout.strip()
        found[hostname] = pid
    return found
