"""Checks 46-48 and 50: the daemon's own attack surface. Slow and idle HTTP clients are cut
off and one address cannot hold every descriptor (46); password checks run on a bounded pool
and are throttled (47); nothing the daemon writes under its data dir is readable by other
local users (48); credentials with NUL bytes, over-wide or dangerous egress allowances, and
routing between the host's other networks are refused (50).

Every peer is a loopback socket of this test's own. Check 50c (forwarding) changes
machine-global state and lives in test_daemon_hardening_router.py.
"""
import concurrent.futures
import json
import os
import pathlib
import re
import resource
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest
import requests
import websocket

from claworc_harness import ADMIN, Client, Daemon, bootstrap_admin

HEAD_MS, IDLE_MS = 1000, 1500


def fresh_dir():
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-hardening-"))
    base.chmod(0o711)
    return base


@pytest.fixture
def short_timeouts():
    base = fresh_dir()
    d = Daemon(base / "data", extra_args=["--unsafe-test-http-timeouts", f"{HEAD_MS},{IDLE_MS}"]).start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


def closed_within(sock, seconds, feed=None):
    """Seconds until the server closes `sock` (EOF or reset), or None if it stays open.
    `feed(sock)` is called every 0.5 s, e.g. to trickle header lines."""
    start = time.monotonic()
    next_feed = start
    sock.settimeout(0.05)
    while time.monotonic() - start < seconds:
        if feed and time.monotonic() >= next_feed:
            try:
                feed(sock)
            except OSError:
                return time.monotonic() - start
            next_feed += 0.5
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start
        assert b" 200 " not in data, f"a slow request must not be answered: {data!r}"
    return None


def connect(port, source="127.0.0.1"):
    s = socket.socket()
    s.settimeout(30)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def get_healthz(sock):
    sock.settimeout(10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_46_slow_and_idle_connections_cut_off(short_timeouts):
    port = short_timeouts.port
    bound = (HEAD_MS + 1000) / 1000

    # Slow loris: a header line every 0.5 s never completes the head in time.
    loris = connect(port)
    loris.sendall(b"GET /healthz HTTP/1.1\r\n")
    lines = iter(range(1000))
    took = closed_within(loris, 10, feed=lambda s: s.sendall(b"X-Slow-%d: 1\r\n" % next(lines)))
    assert took is not None and took <= bound, f"slow-loris connection still open after {took}s"
    loris.close()

    # A connection that never sends a byte is a head that never completes.
    silent = connect(port)
    took = closed_within(silent, 10)
    assert took is not None and took <= bound, took
    silent.close()

    # Keep-alive: a finished request, then silence: closed after the idle timeout, not before
    # it lets a second request through.
    idle = connect(port)
    assert b" 200 " in get_healthz(idle)
    assert b" 200 " in get_healthz(idle), "keep-alive works within the idle time"
    took = closed_within(idle, 10)
    assert took is not None and IDLE_MS / 1000 * 0.8 <= took <= (IDLE_MS + 1000) / 1000, took
    idle.close()

    # A request in flight is neither idle nor a slow head: a long handler is not cut off.
    admin = bootstrap_admin(short_timeouts)
    inst = admin.create("slow-handler")
    r = admin.post(f"/api/v1/instances/{inst['id']}/start")
    assert r.status_code == 200, r.text
    r = admin.post(f"/api/v1/instances/{inst['id']}/exec", {"argv": ["sleep", "3"]})
    assert r.status_code == 200 and r.json()["exit_code"] == 0, r.text

    # Pipelined behind a quick request, the slow one is still in flight when the first
    # response ends: not idle either.
    body = json.dumps({"argv": ["sleep", "3"]}).encode()
    cookie = admin.http.cookies["claworc_session"].encode()
    pipelined = connect(port)
    pipelined.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"POST /api/v1/instances/%d/exec HTTP/1.1\r\nHost: x\r\nOrigin: http://x\r\nCookie: claworc_session=%s\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (inst["id"], cookie, len(body), body))
    replies = b""
    pipelined.settimeout(20)
    while replies.count(b"HTTP/1.1 ") < 2 or not replies.rstrip().endswith(b"}"):
        chunk = pipelined.recv(65536)
        if not chunk:
            break
        replies += chunk
    pipelined.close()
    assert replies.count(b"HTTP/1.1 200") == 2 and b'"exit_code":0' in replies, replies


def test_46_websocket_outlives_http_timeouts(short_timeouts):
    admin = bootstrap_admin(short_timeouts)
    inst = admin.create("ws-long")
    assert admin.post(f"/api/v1/instances/{inst['id']}/start").status_code == 200
    admin.wait_for(inst["id"], lambda i: any(s["name"] == "vnc" and s["state"] == "ready" for s in i["services"]),
                   timeout=90, what="x11vnc ready")
    url = short_timeouts.base_url.replace("http://", "ws://") + f"/api/v1/instances/{inst['id']}/vnc"
    cookie = admin.http.cookies["claworc_session"]
    ws = websocket.create_connection(url, header=[f"Cookie: claworc_session={cookie}"], timeout=20)
    try:
        opcode, version = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY and version.startswith(b"RFB 003."), version
        # Quiet for longer than both HTTP timeouts together: the point of the wait is elapsed
        # time without traffic, there is nothing to wait on.
        time.sleep((HEAD_MS + IDLE_MS) / 1000 + 1)
        ws.send(b"RFB 003.008\n", opcode=websocket.ABNF.OPCODE_BINARY)
        opcode, types = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY and len(types) >= 1, (opcode, types)
    finally:
        ws.close()


@pytest.fixture
def long_timeouts():
    # The held connections send nothing: under load, opening 276 of them can take longer
    # than the 10 s head timeout, which would free places under the cap mid-test.
    base = fresh_dir()
    d = Daemon(base / "data", extra_args=["--unsafe-test-http-timeouts", "120000,120000"]).start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_46_connections_per_client_capped(long_timeouts):
    cap = 256   # the daemon's own default, not a test value
    port = long_timeouts.port
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < cap + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, cap + 500), hard))
    held = [connect(port) for _ in range(cap)]
    try:
        # Admitted, each of them, before any more arrive: under load the kernel's accept queue
        # overflows and hands connections to the server in another order than they connected.
        for s in held:
            assert b" 200 " in get_healthz(s), "a connection under the cap was refused"
        excess = [connect(port) for _ in range(20)]
        for i, s in enumerate(excess):
            took = closed_within(s, 10)
            assert took is not None, f"connection {cap + i + 1} (over the per-client cap) stays open"
            s.close()
        # Another address still gets in; the held connections still work.
        fresh = connect(port, source="127.0.0.2")
        assert b" 200 " in get_healthz(fresh)
        fresh.close()
        assert b" 200 " in get_healthz(held[0])
    finally:
        for s in held:
            s.close()
    # Closed connections are no longer counted (bounded poll: the server sees the FINs).
    deadline = time.monotonic() + 10
    while True:
        s = connect(port)
        try:
            if b" 200 " in get_healthz(s):
                break
        except OSError:
            pass
        finally:
            s.close()
        assert time.monotonic() < deadline, "the cap did not free up after the clients closed"
        time.sleep(0.05)


def test_46_daemon_raises_its_descriptor_limit():
    base = fresh_dir()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Start it with a low soft limit, as a systemd unit or shell would.
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        d = Daemon(base / "data").start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        limits = pathlib.Path(f"/proc/{d.proc.pid}/limits").read_text()
        m = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits)
        assert m and m.group(1) == m.group(2), limits
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)


# ---- 47 ---------------------------------------------------------------------------------------

def threads_of(pid):
    return int(re.search(r"Threads:\s+(\d+)", pathlib.Path(f"/proc/{pid}/status").read_text()).group(1))


def login_raw(daemon, username, password, headers=None):
    return requests.post(daemon.base_url + "/api/v1/auth/login", json={"username": username, "password": password},
                         headers=headers or {}, timeout=60)


def assert_throttled(r):
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "too_many_attempts", r.text
    assert int(r.headers["Retry-After"]) > 0, r.headers


def test_47_password_checks_bounded_and_throttled(admin):
    daemon = admin.daemon
    pid = daemon.proc.pid
    before = threads_of(pid)
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], threads_of(pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(60) as pool:
            results = list(pool.map(lambda _: login_raw(daemon, ADMIN[0], "wrong-password"), range(60)))
    finally:
        stop.set()
        sampler.join()
    assert peak[0] - before <= 8, f"threads grew from {before} to {peak[0]} for 60 password checks"
    statuses = [r.status_code for r in results]
    assert set(statuses) <= {401, 429}, statuses
    assert 1 <= statuses.count(401) <= 10, statuses
    for r in results:
        if r.status_code == 429:
            assert_throttled(r)

    # While throttled, even the right password is refused, and a forged client address in
    # X-Forwarded-For changes nothing.
    assert_throttled(login_raw(daemon, *ADMIN))
    assert_throttled(login_raw(daemon, *ADMIN, headers={"X-Forwarded-For": "198.51.100.7"}))

    # An unknown username is throttled exactly like a known one (no enumeration).
    unknown = [login_raw(daemon, "nobody-here", "wrong-password") for _ in range(11)]
    assert [r.status_code for r in unknown[:10]] == [401] * 10, [r.text for r in unknown]
    assert_throttled(unknown[10])
    assert unknown[10].json() == next(r for r in results if r.status_code == 429).json()
    assert unknown[0].json() == next(r for r in results if r.status_code == 401).json()

    # Per address: other accounts from this address still get their attempts until the
    # address has failed 30 times within the window; then every login from it is refused.
    failures = statuses.count(401) + 10
    names = iter(f"user{i}" for i in range(100))
    while failures < 30:
        name = next(names)
        for _ in range(min(10, 30 - failures)):
            assert login_raw(daemon, name, "wrong-password").status_code == 401
            failures += 1
    assert_throttled(login_raw(daemon, "yet-another", "wrong-password"))


def test_47_other_address_not_throttled_by_this_one(admin):
    daemon = admin.daemon
    for _ in range(10):
        assert login_raw(daemon, "victim", "wrong-password").status_code == 401
    assert_throttled(login_raw(daemon, "victim", "wrong-password"))
    # The admin from another address is unaffected by failures against other accounts.
    other = socket.socket()
    other.bind(("127.0.0.2", 0))
    other.connect(("127.0.0.1", daemon.port))
    body = json.dumps({"username": ADMIN[0], "password": ADMIN[1]}).encode()
    other.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    other.settimeout(30)
    reply = b""
    while chunk := other.recv(4096):
        reply += chunk
    other.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply


# ---- 48 ---------------------------------------------------------------------------------------

def test_48_data_dir_is_private():
    base = fresh_dir()
    data = base / "data"
    d = Daemon(data, extra_args=["--instance-services", "none"]).start()
    try:
        # An older version left the database and its WAL files world-readable (empty -wal and
        # -shm files are what SQLite itself starts from).
        d.stop()
        for name in ("claworc.db", "claworc.db-wal", "claworc.db-shm"):
            (data / name).touch()
            (data / name).chmod(0o644)
        d.start()
        for name in ("claworc.db", "claworc.db-wal", "claworc.db-shm"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
        assert (data / "setup-code").exists()
        admin = bootstrap_admin(d)
        inst = admin.create("private")
        assert admin.post(f"/api/v1/instances/{inst['id']}/start").status_code == 200
        r = admin.post(f"/api/v1/instances/{inst['id']}/exec", {"argv": ["true"]})
        assert r.status_code == 200, r.text
        instance_dir = data / "instances" / str(inst["id"])
        for must in ("claworc.db", "claworc.db-wal", "claworc.db-shm"):
            assert (data / must).exists(), must
        assert (instance_dir / "instance.log").exists()

        # Directories instances traverse as their unprivileged ids: searchable, not listable.
        traversal = {data, data / "instances", data / "run", instance_dir}
        # The instance's home belongs to the instance (0700, its own ids); what it keeps
        # inside is its business, not the daemon's.
        home = instance_dir / "home"
        problems = []
        for dirpath, dirnames, filenames in os.walk(data):
            dirpath = pathlib.Path(dirpath)
            mode = stat.S_IMODE(dirpath.stat().st_mode)
            allowed = 0o011 if dirpath in traversal else 0
            if mode & 0o077 & ~allowed:
                problems.append(f"dir {dirpath} {oct(mode)}")
            if dirpath == home:
                dirnames[:] = []
                continue
            for name in filenames:
                path = dirpath / name
                fmode = stat.S_IMODE(path.lstat().st_mode)
                if not stat.S_ISLNK(path.lstat().st_mode) and fmode & 0o077:
                    problems.append(f"file {path} {oct(fmode)}")
        assert stat.S_IMODE(home.stat().st_mode) == 0o700 and home.stat().st_uid != 0
        assert not problems, problems
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)


# ---- 50a --------------------------------------------------------------------------------------

def test_50a_nul_in_credentials_refused(daemon):
    client = Client(daemon)
    code = daemon.setup_code()
    for username, password in [("adm\u0000in", ADMIN[1]), (ADMIN[0], ADMIN[1] + "\u0000junk")]:
        r = client.post("/api/v1/setup", {"code": code, "username": username, "password": password})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "nul_in_credentials", r.text
    # Nothing was created: setup still works with the same code.
    r = client.post("/api/v1/setup", {"code": code, "username": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/auth/login", {"username": ADMIN[0], "password": ADMIN[1] + "\u0000junk"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "nul_in_credentials", r.text
    r = client.post("/api/v1/auth/login", {"username": ADMIN[0] + "\u0000x", "password": ADMIN[1]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "nul_in_credentials", r.text
    client.login()


# ---- 50b --------------------------------------------------------------------------------------

def host_ipv4_addresses():
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    return [m.group(1) for m in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+)/", out)]


def test_50b_egress_allow_refuses_dangerous_entries(admin):
    inst = admin.create("allow-checked")
    url = admin.url(f"/api/v1/instances/{inst['id']}/settings")
    defaults = admin.url("/api/v1/settings/instance-defaults")
    bad = ["0.0.0.0/0", "169.254.169.254", "169.254.0.0/16", "127.0.0.1", "0.0.0.0/8", "0.1.2.3", "224.0.0.1",
           "240.0.0.0/8", "255.255.255.255", "168.63.129.16", "10.0.0.0/8", "192.168.0.0/15", "10.200.0.8/30",
           "10.0.0.1/33", "10.0.0.01x", " 10.0.0.1", "010.0.0.1", "10.0.0.1/016"]
    bad += [a for a in host_ipv4_addresses() if not a.startswith("127.")]
    for entry in bad:
        for target in (url, defaults):
            r = admin.http.put(target, json={"egress_allow": [entry]}, timeout=30)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_setting", (entry, r.text)
    assert admin.get(f"/api/v1/instances/{inst['id']}/settings").json()["overrides"] == {}, "nothing half-applied"

    # Stored normalised: one form per destination, host bits cleared.
    r = admin.http.put(url, json={"egress_allow": ["10.1.2.3", "10.1.2.3/16", "192.168.77.10/32", "172.16.5.9/24"]},
                       timeout=30)
    assert r.status_code == 200, r.text
    want = ["10.1.2.3/32", "10.1.0.0/16", "192.168.77.10/32", "172.16.5.0/24"]
    assert r.json()["overrides"]["egress_allow"] == want, r.text
    assert admin.get(f"/api/v1/instances/{inst['id']}/settings").json()["overrides"]["egress_allow"] == want
