"""Check 45: a hostile init cannot exhaust the daemon.

The daemon runs hostile_init.c (built here, static) as every instance's init through its hidden
--unsafe-test-init option: it says hello, then floods the control socket with 3000 replies
nobody asked for, each carrying a descriptor, then with junk. The daemon must close what it
received at once, judge the init broken, and stop the instance as failed, saying why.
"""
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading

import pytest

from claworc_harness import Daemon, bootstrap_admin

HERE = pathlib.Path(__file__).resolve().parent


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def hostile_daemon():
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-hostile-"))
    base.chmod(0o711)
    binary = base / "hostile_init"
    build = subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(HERE / "hostile_init.c")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    daemon = Daemon(base / "data", extra_args=["--unsafe-test-init", str(binary),
                                               "--instance-services", "none"]).start()
    yield daemon
    daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_45_hostile_init_is_stopped_and_its_descriptors_closed(hostile_daemon):
    client = bootstrap_admin(hostile_daemon)
    pid = hostile_daemon.proc.pid
    baseline = open_fds(pid)
    iid = client.create("hostile")["id"]

    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], open_fds(pid))
            done.wait(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r = client.post(f"/api/v1/instances/{iid}/start")
        assert r.status_code == 200, r.text
        failed = client.wait_for(iid, lambda i: i["state"] == "failed", timeout=30,
                                 what="the daemon to stop the hostile instance")
    finally:
        done.set()
        sampler.join()
    assert "broke the control protocol" in (failed["last_error"] or ""), failed
    # The instance's own socket, log and pidfd come and go; 3000 leaked descriptors do not.
    assert peak[0] < baseline + 32, f"the daemon held {peak[0]} descriptors (baseline {baseline})"
    assert open_fds(pid) <= baseline + 2, f"{open_fds(pid)} descriptors left open (baseline {baseline})"
    assert client.get("/healthz").status_code == 200
    assert children(pid) == [], "the hostile init still runs"


def children(parent):
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and f"PPid:\t{parent}\n" in pathlib.Path(f"/proc/{entry}/status").read_text():
                found.append(int(entry))
        except OSError:
            pass
    return found
