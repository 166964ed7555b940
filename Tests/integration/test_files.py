"""The files API: an instance's persistent home through /api/v1/instances/{id}/files, whether
the instance runs or not. Real daemon, real home on disk; escapes tried the ways an instance's
own processes could (symlinks out, swapped in mid-request), large transfers streamed with the
daemon's memory watched, an upload cut off mid-body."""
import ctypes
import hashlib
import os
import pathlib
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse

import pytest

from claworc_harness import bootstrap_admin

RENAME_EXCHANGE = 2
MiB = 1 << 20


def error_of(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"]["code"] == code, r.text


def q(path):
    return urllib.parse.quote(path, safe="")


class Home:
    def __init__(self, admin, name):
        self.admin = admin
        self.iid = admin.create(name)["id"]
        self.dir = admin.daemon.data_dir / "instances" / str(self.iid) / "home"
        self.agent_uid = self.dir.stat().st_uid

    def url(self, tail, path=None):
        base = f"/api/v1/instances/{self.iid}/files{tail}"
        return base if path is None else f"{base}?path={q(path)}"

    def list(self, path):
        return self.admin.get(self.url("", path))

    def put(self, path, data):
        return self.admin.http.put(self.admin.url(self.url("/content", path)), data=data, timeout=120)

    def get(self, path, **kw):
        return self.admin.get(self.url("/content", path), **kw)

    def mkdir(self, path):
        return self.admin.post(self.url("/mkdir"), {"path": path})

    def move(self, a, b):
        return self.admin.post(self.url("/move"), {"from": a, "to": b})

    def delete(self, path):
        return self.admin.delete(self.url("", path))


@pytest.fixture
def home(admin):
    return Home(admin, "files")


def test_files_round_trip_whether_running_or_not(admin, home):
    assert home.mkdir("/docs").status_code == 201
    payload = os.urandom(300_000)
    assert home.put("/docs/report ü.bin", payload).status_code == 201
    listing = home.list("/").json()
    assert listing["path"] == "/" and [e["name"] for e in listing["entries"] if e["type"] == "dir"] == ["docs"]
    [entry] = home.list("/docs").json()["entries"]
    assert entry["name"] == "report ü.bin" and entry["type"] == "file" and entry["size"] == len(payload)
    assert isinstance(entry["mtime"], int) and abs(entry["mtime"] - time.time()) < 600
    r = home.get("/docs/report ü.bin")
    assert r.status_code == 200 and r.content == payload
    assert r.headers["Content-Length"] == str(len(payload))
    assert "attachment" in r.headers["Content-Disposition"] and "report%20%C3%BC.bin" in r.headers["Content-Disposition"]
    on_disk = home.dir / "docs" / "report ü.bin"
    assert on_disk.stat().st_uid == home.agent_uid and on_disk.stat().st_gid == home.agent_uid
    assert (home.dir / "docs").stat().st_uid == home.agent_uid

    assert home.put("/docs/report ü.bin", b"second").status_code == 201, "an upload replaces the file"
    assert home.get("/docs/report ü.bin").content == b"second"
    assert home.move("/docs/report ü.bin", "/docs/renamed.txt").status_code == 204
    assert home.put("/docs/other.txt", b"x").status_code == 201
    error_of(home.move("/docs/other.txt", "/docs/renamed.txt"), 409, "exists")
    error_of(home.mkdir("/docs"), 409, "exists")
    error_of(home.get("/docs"), 400, "is_a_directory")
    error_of(home.list("/docs/renamed.txt"), 400, "not_a_directory")
    error_of(home.get("/nothing-here"), 404, "not_found")

    # The same files from inside a running instance, as its agent.
    assert admin.post(f"/api/v1/instances/{home.iid}/start").status_code == 200
    seen = admin.post(f"/api/v1/instances/{home.iid}/exec",
                      {"argv": ["sh", "-c", "cat /home/claworc/docs/renamed.txt; echo; stat -c %u /home/claworc/docs/renamed.txt"]}).json()
    assert seen["output"].split() == ["second", "1000"], seen
    assert home.put("/while-running.txt", b"live").status_code == 201
    assert admin.post(f"/api/v1/instances/{home.iid}/exec", {"argv": ["cat", "/home/claworc/while-running.txt"]}).json()["output"] == "live"
    admin.post(f"/api/v1/instances/{home.iid}/stop")

    assert home.delete("/docs").status_code == 204
    error_of(home.list("/docs"), 404, "not_found")
    assert not (home.dir / "docs").exists()


def test_files_escapes_refused(admin, home, data_dir):
    other = Home(admin, "other")
    (other.dir / "secret").write_text("other instance's")
    sentinel = pathlib.Path(tempfile.mkdtemp(prefix="claworc-sentinel-"))
    (sentinel / "keep").write_text("host file")
    try:
        # Links an instance's processes could make in its home, to the host and elsewhere.
        os.symlink("/etc", home.dir / "etc-link")
        os.symlink(str(data_dir / "claworc.db"), home.dir / "db-link")
        os.symlink(str(other.dir), home.dir / "other-link")
        os.symlink("../..", home.dir / "up-link")
        os.symlink(str(sentinel), home.dir / "sentinel-link")
        for path in ("/etc-link/shadow", "/db-link", "/other-link/secret", "/up-link/claworc.db", "/sentinel-link/keep"):
            error_of(home.get(path), 403, "outside_home")
        for path in ("/etc-link", "/other-link", "/up-link", "/sentinel-link"):
            error_of(home.list(path), 403, "outside_home")
        error_of(home.put("/sentinel-link/planted", b"x"), 403, "outside_home")
        error_of(home.mkdir("/sentinel-link/made"), 403, "outside_home")
        assert home.put("/mine.txt", b"x").status_code == 201
        error_of(home.move("/mine.txt", "/sentinel-link/moved"), 403, "outside_home")
        error_of(home.delete("/sentinel-link/keep"), 403, "outside_home")
        for bad in ("../claworc.db", "/docs/../../x", "a/../../b"):
            error_of(home.get(bad), 400, "invalid_path")
            error_of(home.put(bad, b"x"), 400, "invalid_path")
        error_of(home.get("/a\x00b"), 400, "invalid_path")
        # "/" is the home: an absolute path never means the host's.
        error_of(home.get("/etc/shadow"), 404, "not_found")
        error_of(home.delete("/"), 400, "invalid_path")
        # Deleting a link removes the link, never what it points to.
        assert home.delete("/sentinel-link").status_code == 204
        assert sorted(p.name for p in sentinel.iterdir()) == ["keep"] and (sentinel / "keep").read_text() == "host file"
        assert (other.dir / "secret").read_text() == "other instance's"
    finally:
        shutil.rmtree(sentinel, ignore_errors=True)


def test_files_symlink_swapped_mid_request_leads_nowhere(home):
    """A directory and a symlink to a host directory swap places as fast as they can while
    uploads, listings, folder creation and deletes run through the swapped name."""
    sentinel = pathlib.Path(tempfile.mkdtemp(prefix="claworc-sentinel-"))
    (sentinel / "keep").write_text("host file")
    before = sorted(p.name for p in sentinel.iterdir())
    (home.dir / "sw").mkdir()
    os.symlink(str(sentinel), home.dir / "link")
    stop = threading.Event()
    swaps = [0]

    def swapper():
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(home.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while not stop.is_set():
                if libc.renameat2(fd, b"sw", fd, b"link", RENAME_EXCHANGE) == 0:
                    swaps[0] += 1
        finally:
            os.close(fd)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        statuses = set()
        for i in range(150):
            statuses.add(home.put(f"/sw/up-{i}", b"payload").status_code)
            statuses.add(home.list("/sw").status_code)
            statuses.add(home.mkdir(f"/sw/dir-{i}").status_code)
            statuses.add(home.delete("/sw/keep").status_code)
            statuses.add(home.get("/sw/keep").status_code)
    finally:
        stop.set()
        thread.join()
    assert swaps[0] > 100, f"the race ran ({swaps[0]} swaps)"
    assert 403 in statuses and statuses & {200, 201, 204}, statuses
    assert sorted(p.name for p in sentinel.iterdir()) == before, "a request went through the swapped link"
    assert (sentinel / "keep").read_text() == "host file"
    shutil.rmtree(sentinel, ignore_errors=True)


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakRSS:
    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, rss_kib(pid), threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self.stop.wait(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_files_large_transfers_stream(home, daemon):
    size = 200 * MiB
    chunk = os.urandom(MiB)
    digest = hashlib.sha256()
    for _ in range(size // MiB):
        digest.update(chunk)
    baseline = rss_kib(daemon.proc.pid)

    def body():
        for _ in range(size // MiB):
            yield chunk

    with PeakRSS(daemon.proc.pid) as upload:
        assert home.put("/big.bin", body()).status_code == 201
    assert (home.dir / "big.bin").stat().st_size == size
    with PeakRSS(daemon.proc.pid) as download:
        r = home.get("/big.bin", stream=True)
        assert r.status_code == 200 and r.headers["Content-Length"] == str(size)
        received = hashlib.sha256()
        total = 0
        for part in r.iter_content(MiB):
            received.update(part)
            total += len(part)
    assert total == size and received.hexdigest() == digest.hexdigest()
    # Bound: a fraction of the file. Holding it whole would add 200 MiB.
    for name, peak in (("upload", upload.peak), ("download", download.peak)):
        assert peak - baseline < 48 * 1024, f"{name}: daemon RSS grew {(peak - baseline) // 1024} MiB"


def test_files_cut_off_upload_leaves_nothing(home, daemon):
    assert home.put("/kept.txt", b"the old content").status_code == 201
    for target in ("/kept.txt", "/fresh.txt"):
        with socket.create_connection(("127.0.0.1", daemon.port)) as s:
            cookie = "; ".join(f"{c.name}={c.value}" for c in home.admin.http.cookies)
            s.sendall((f"PUT {home.url('/content', target)} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                       f"Content-Length: {10 * MiB}\r\n\r\n").encode())
            s.sendall(b"y" * MiB)
        # The daemon has seen the connection close once a new request on another connection
        # is answered after it; the listing then shows what the cut upload left.
        names = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            names = sorted(e["name"] for e in home.list("/").json()["entries"])
            if not any(n.startswith(".claworc-upload") for n in names):
                break
            time.sleep(0.05)
        assert names == ["kept.txt"], names
        assert home.get("/kept.txt").content == b"the old content"
    assert sorted(os.listdir(home.dir)) == ["kept.txt"]
