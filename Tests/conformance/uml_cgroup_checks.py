"""Checks 25-29 (cgroup v2) run INSIDE a user-mode Linux guest, where cgroup v2 has real
controllers. Started by test_cgroups_uml.py through Tests/uml/umlrun.py; prints one line per
check ("PASS|FAIL <nn> <name>: <detail>") and a closing "N passed, N failed" line.

Inside the guest: a real `claworc serve` (instances run only their init, no network) in its
own delegated cgroup, driven over HTTP on the guest's loopback; probes run through the exec
API as the agent user, confined exactly like a service.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[2]
import requests

BINARY = sys.argv[1]
CGROUP = pathlib.Path("/sys/fs/cgroup")
results = []


def check(number, name):
    def wrap(fn):
        def run(*a):
            try:
                detail = fn(*a) or ""
                results.append((number, name, True, detail))
            except Exception as e:  # noqa: BLE001 - every failure is reported, none hidden
                results.append((number, name, False, f"{type(e).__name__}: {e}".replace("\n", " ")[:600]))
                traceback.print_exc()
        run.number = number
        return run
    return wrap


class Appliance:
    def __init__(self):
        data = pathlib.Path("/tmp/claworc-uml/data")
        data.parent.mkdir(parents=True, exist_ok=True)
        data.parent.chmod(0o711)
        # The daemon gets a delegated cgroup of its own (the guest's command sits in a leaf).
        (CGROUP / "appliance").mkdir(exist_ok=True)
        self.log = open("/tmp/claworc-uml/daemon.log", "w+b")
        self.proc = subprocess.Popen(
            ["sh", "-c", 'echo $$ > /sys/fs/cgroup/appliance/cgroup.procs && exec "$@"', "sh", BINARY, "serve",
             "--listen", "127.0.0.1:18555", "--data-dir", str(data), "--default-network", "none",
             "--instance-services", "none"], stdout=self.log, stderr=subprocess.STDOUT)
        self.base = "http://127.0.0.1:18555"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.log.seek(0)
            if b"claworc listening" in self.log.read():
                break
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited: " + self.daemon_log())
            time.sleep(0.05)
        else:
            raise RuntimeError("daemon did not start: " + self.daemon_log())
        self.http = requests.Session()
        code = (data / "setup-code").read_text().strip()
        r = self.http.post(self.base + "/api/v1/setup", json={"code": code, "username": "admin", "password": "uml-password-1"})
        assert r.status_code == 200, r.text

    def daemon_log(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def instance(self, name, **settings):
        r = self.http.post(self.base + "/api/v1/instances", json={"name": name})
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        r = self.http.put(self.base + f"/api/v1/instances/{iid}/settings", json=settings)
        assert r.status_code == 200, r.text
        r = self.http.post(self.base + f"/api/v1/instances/{iid}/start")
        assert r.status_code == 200, r.text
        assert r.json()["limits"] != "unavailable", f"limits must be enforced in the guest: {r.json()}"
        return iid

    def get(self, iid):
        return self.http.get(self.base + f"/api/v1/instances/{iid}").json()

    def run(self, iid, code, timeout_ms=60000):
        r = self.http.post(self.base + f"/api/v1/instances/{iid}/exec",
                           json={"argv": ["python3", "-c", code], "timeout_ms": timeout_ms}, timeout=timeout_ms / 1000 + 30)
        assert r.status_code == 200, r.text
        return r.json()

    def stop(self, iid):
        r = self.http.post(self.base + f"/api/v1/instances/{iid}/stop")
        assert r.status_code == 200 and r.json()["state"] == "stopped", r.text

    def cgroup_dir(self, iid):
        return CGROUP / "appliance" / "claworc" / "instances" / str(iid)


@check(25, "memory_max_oom_kill_confined_to_the_instance")
def memory_max(app):
    iid = app.instance("memmax", memory_max_mib=96, memory_high_mib=96)
    hog = app.run(iid, "x = bytearray(400 * 1024 * 1024)\nprint('survived')")
    assert hog["signal"] == 9 and "survived" not in hog["output"], f"the hog must be OOM-killed: {hog}"
    usage = app.get(iid)["usage"]
    assert usage["oom_kills"] >= 1, usage
    # The init and the instance survive; the next command runs normally.
    assert app.get(iid)["state"] == "running"
    assert app.run(iid, "print('alive')")["output"].strip() == "alive"
    assert (app.cgroup_dir(iid) / "memory.max").read_text().strip() == str(96 << 20)
    app.stop(iid)
    assert not app.cgroup_dir(iid).exists(), "the instance's cgroup is removed on stop"
    return f"hog killed by signal 9, oom_kills={usage['oom_kills']}"


@check(26, "memory_high_throttles_without_killing")
def memory_high(app):
    iid = app.instance("memhigh", memory_max_mib=1024, memory_high_mib=48)
    before = app.get(iid)["usage"]["memory_high_events"]
    # Page cache is what memory.high reclaims (the guest has no swap for anonymous memory):
    # reading Chromium's 200+ MiB binary pushes the instance far past 48 MiB.
    out = app.run(iid, "n = 0\nwith open('/usr/lib/chromium/chromium', 'rb') as f:\n"
                       "    while chunk := f.read(1 << 20): n += len(chunk)\nprint('done', n >> 20)")
    assert out["exit_code"] == 0 and out["output"].startswith("done"), out
    assert int(out["output"].split()[1]) > 96, out
    usage = app.get(iid)["usage"]
    assert usage["memory_high_events"] > before, usage
    assert usage["oom_kills"] == 0, usage
    app.stop(iid)
    return f"memory.high events {before} -> {usage['memory_high_events']}, no kill"


@check(27, "pids_max_stops_a_fork_bomb")
def pids_max(app):
    iid = app.instance("pidsmax", pids_max=40)
    out = app.run(iid, """
import errno, os, time
children = []
result = "no limit hit"
for i in range(500):
    try:
        pid = os.fork()
    except OSError as e:
        result = errno.errorcode[e.errno]
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
print(result, len(children))
""", timeout_ms=60000)
    result, forked = out["output"].split()[-2:]
    assert result == "EAGAIN", out
    assert int(forked) < 40, out
    pids = int((app.cgroup_dir(iid) / "pids.current").read_text())
    assert pids <= 40, pids
    started = time.monotonic()
    app.stop(iid)
    return f"fork failed with EAGAIN after {forked} children; stop took {time.monotonic() - started:.2f} s"


@check(28, "cpu_max_throttles")
def cpu_max(app):
    iid = app.instance("cpumax", cpus=0.2)
    usage = app.get(iid)["usage"]
    out = app.run(iid, "import time\nend = time.time() + 2\nwhile time.time() < end: pass\nprint('spun')")
    assert out["output"].strip() == "spun", out
    after = app.get(iid)["usage"]
    used = (after["cpu_usage_usec"] - usage["cpu_usage_usec"]) / 1e6
    assert after["cpu_throttled_periods"] > usage["cpu_throttled_periods"], after
    # 2 s of wall time at 0.2 CPU is about 0.4 s of CPU; unthrottled it would be about 2 s.
    assert 0.2 <= used <= 0.9, f"used {used:.2f} s of CPU in 2 s at cpus=0.2"
    app.stop(iid)
    return f"{used:.2f} s CPU in 2 s wall at cpus=0.2; throttled {after['cpu_throttled_periods']} periods"


@check(29, "cgroup_namespace_shows_only_the_instance")
def cgroup_namespace(app):
    iid = app.instance("cgns", memory_max_mib=300, memory_high_mib=250)
    out = app.run(iid, """
import os
print(open('/proc/self/cgroup').read().strip())
print(sorted(os.listdir('/sys/fs/cgroup')) and 'claworc' in os.listdir('/sys/fs/cgroup'))
print(open('/sys/fs/cgroup/memory.max').read().strip())
try:
    os.mkdir('/sys/fs/cgroup/escape')
    print('mkdir ok')
except OSError as e:
    print('mkdir', e.errno)
""")
    lines = out["output"].strip().splitlines()
    assert lines[0] == "0::/", lines
    assert lines[1] == "False", "no view of the appliance's or the host's tree"
    assert lines[2] == str(300 << 20), lines
    assert lines[3].startswith("mkdir 30") or lines[3].startswith("mkdir 13"), lines   # EROFS or EACCES
    app.stop(iid)
    return "; ".join(lines)


def main():
    app = Appliance()
    try:
        for fn in (memory_max, memory_high, pids_max, cpu_max, cgroup_namespace):
            fn(app)
    finally:
        app.proc.terminate()
        try:
            app.proc.wait(30)
        except subprocess.TimeoutExpired:
            app.proc.kill()
    for number, name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'} {number} {name}: {detail}")
    passed = sum(1 for r in results if r[2])
    print(f"{passed} passed, {len(results) - passed} failed")
    if any(not r[2] for r in results):
        print("daemon log tail:", app.daemon_log())
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
