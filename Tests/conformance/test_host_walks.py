"""Check 49: host root never walks an instance's tree into the host.

The daemon walks instance-controlled trees as host root: the home's ownership fix-up at start
and the removal at delete. A host process that may write in the tree (here a uid outside the
instance's range, which the tree lets write: a home restored with foreign owners can; the
instance's own ids are killed before any walk, see the last test) swaps a directory for a
symlink to a root-owned sentinel directory and back, as fast as it can, while the daemon
walks. The sentinel's files must keep their owner, mode and existence.
"""
import ctypes
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

from claworc_harness import Daemon, bootstrap_admin, init_pid

ID_RANGE = 65536
AGENT_UID = 1000
FOREIGN_UID = 12345      # the owner of a home restored from elsewhere
OUTSIDER_UID = 54321     # a host user outside every instance's range
FILES = [f"f{i}" for i in range(200)]
RENAME_EXCHANGE = 2


@pytest.fixture
def walk_daemon():
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-walks-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data", extra_args=["--instance-services", "none"]).start()
    yield daemon
    daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def sentinel():
    """A root-owned directory of the host with files of known owner and mode."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="claworc-sentinel-"))
    for name in FILES:
        path = top / name
        path.write_text("host data\n")
        os.chown(path, 0, 0)
        path.chmod(0o640)
    top.chmod(0o700)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def assert_intact(sentinel):
    st = os.lstat(sentinel)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o700), f"sentinel dir changed: {st}"
    present = sorted(os.listdir(sentinel))
    assert present == sorted(FILES), f"sentinel files removed: {sorted(set(FILES) - set(present))[:10]}"
    for name in FILES:
        st = os.lstat(sentinel / name)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o640), f"{name} changed: {st}"


def prepare_home(home, owner, target):
    """home/sw/d with files named like the sentinel's and home/sw/l, a symlink to `target`;
    sw writable by anyone; the whole tree
    owned by `owner` (which, unless it is the agent, makes the daemon's ownership walk run)."""
    sw = home / "sw"
    if os.path.lexists(sw):
        shutil.rmtree(sw)
    (sw / "d").mkdir(parents=True)
    for name in FILES:
        (sw / "d" / name).write_text("instance data\n")
    os.symlink(target, sw / "l")
    sw.chmod(0o777)
    os.lchown(home, owner, owner)
    for root, dirs, files in os.walk(home, followlinks=False):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), owner, owner)


class Swapper:
    """A host process as `uid` exchanging dir/d (a directory) and dir/l (a symlink to
    `target`) with renameat2(RENAME_EXCHANGE), in a loop, remaking either when a walk
    removed it."""

    def __init__(self, directory, uid, target):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        libc = ctypes.CDLL(None, use_errno=True)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.write(ready_w, b"r")
                while True:
                    if libc.renameat2(fd, b"d", fd, b"l", RENAME_EXCHANGE) == 0:
                        continue
                    for make in (lambda: os.mkdir("d", dir_fd=fd), lambda: os.symlink(str(target), "l", dir_fd=fd)):
                        try:
                            make()
                        except OSError:
                            pass
            finally:
                os._exit(0)
        os.close(ready_w)
        os.close(fd)
        assert os.read(ready_r, 1) == b"r", "the swapper did not start"
        os.close(ready_r)
        self.pid = pid

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)


def id_base(client, daemon, iid, name):
    assert client.post(f"/api/v1/instances/{iid}/start").status_code == 200
    uid_map = pathlib.Path(f"/proc/{init_pid(daemon, name)}/uid_map").read_text().split()
    assert client.post(f"/api/v1/instances/{iid}/stop").status_code == 200
    return int(uid_map[1])


def test_49_ownership_walk_at_start_does_not_follow_swapped_symlinks(walk_daemon, sentinel):
    client = bootstrap_admin(walk_daemon)
    iid = client.create("walked")["id"]
    base = id_base(client, walk_daemon, iid, "walked")
    home = walk_daemon.data_dir / "instances" / str(iid) / "home"
    for _ in range(15):
        prepare_home(home, FOREIGN_UID, sentinel)
        swapper = Swapper(home / "sw", OUTSIDER_UID, sentinel)
        try:
            r = client.post(f"/api/v1/instances/{iid}/start")
        finally:
            swapper.stop()
        assert r.status_code == 200, r.text
        assert_intact(sentinel)
        # The walk ran: the home came back into the instance's range.
        assert os.lstat(home).st_uid == base + AGENT_UID
        assert client.post(f"/api/v1/instances/{iid}/stop").status_code == 200


def test_49_removal_at_delete_does_not_follow_swapped_symlinks(walk_daemon, sentinel):
    client = bootstrap_admin(walk_daemon)
    for round_ in range(10):
        iid = client.create(f"removed-{round_}")["id"]
        home = walk_daemon.data_dir / "instances" / str(iid) / "home"
        prepare_home(home, FOREIGN_UID, sentinel)
        swapper = Swapper(home / "sw", OUTSIDER_UID, sentinel)
        try:
            r = client.delete(f"/api/v1/instances/{iid}")
        finally:
            swapper.stop()
        # Entries the swapper made during the removal may make one delete report a leftover;
        # the next, with the swapper gone, completes it.
        assert r.status_code in (204, 500), r.text
        assert_intact(sentinel)
        if r.status_code == 500:
            assert r.json()["error"]["code"] == "storage_failed", r.text
            assert client.delete(f"/api/v1/instances/{iid}").status_code == 204
        assert not (walk_daemon.data_dir / "instances" / str(iid)).exists()


def in_range(base):
    """Live host processes whose real or effective uid lies in [base, base + 65536)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            status = pathlib.Path(f"/proc/{entry}/status").read_text()
        except (OSError, ValueError):
            continue
        uids = [int(x) for x in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()]
        state = re.search(r"^State:\s+(\S)", status, re.M).group(1)
        if state not in "ZX" and any(base <= u < base + ID_RANGE for u in uids[:2]):
            found.append(int(entry))
    return found


def spawn_as(uid):
    def become():
        os.setsid()
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    return subprocess.Popen(["sleep", "1000"], preexec_fn=become)


def test_49_stop_delete_and_restart_leave_no_process_in_the_id_range(walk_daemon):
    client = bootstrap_admin(walk_daemon)
    iid = client.create("cleared")["id"]
    base = id_base(client, walk_daemon, iid, "cleared")

    # Stop: processes of the range outside the instance's pid namespace go too.
    assert client.post(f"/api/v1/instances/{iid}/start").status_code == 200
    strays = [spawn_as(base + AGENT_UID), spawn_as(base + 7)]
    assert client.post(f"/api/v1/instances/{iid}/stop").status_code == 200
    assert [p.poll() for p in strays] == [-signal.SIGKILL] * 2, "stop left processes of the range"
    assert in_range(base) == []

    # Daemon start: a previous daemon's instance (its init shutting down after the daemon
    # died) and a stray are killed before anything else happens.
    assert client.post(f"/api/v1/instances/{iid}/start").status_code == 200
    stray = spawn_as(base + AGENT_UID)
    walk_daemon.proc.kill()
    walk_daemon.proc.wait()
    walk_daemon.start()
    assert stray.poll() == -signal.SIGKILL, "daemon start left a process of the range"
    client = bootstrap_admin_again(walk_daemon)
    running = client.wait_for(iid, lambda i: i["state"] == "running", timeout=30, what="autostart")
    assert running["last_error"] is None

    # Delete.
    stray = spawn_as(base + AGENT_UID)
    assert client.delete(f"/api/v1/instances/{iid}").status_code == 204
    assert stray.poll() == -signal.SIGKILL, "delete left a process of the range"
    assert in_range(base) == []


def bootstrap_admin_again(daemon):
    from claworc_harness import Client
    client = Client(daemon)
    client.login()
    return client
