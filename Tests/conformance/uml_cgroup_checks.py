"""Checks 25-29 and 40 (cgroup v2) run INSIDE a user-mode Linux guest, where cgroup v2 has real
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
DATA_DISK = sys.argv[2] if len(sys.argv) > 2 else None   # an ext4 block device for the data dir
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
    """A real `claworc serve` in the guest, started in the cgroup `unit` (as systemd would start
    a unit's main process: the shell writes itself into the cgroup, then execs the daemon; a
    write the kernel refuses is systemd's 219/CGROUP)."""

    def __init__(self, unit="appliance", port=18555, name="data", extra=(), setup=True):
        data = pathlib.Path("/tmp/claworc-uml") / name
        if name == "data" and DATA_DISK:
            data.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "ext4", DATA_DISK, str(data.parent)], check=True)
        data.parent.mkdir(parents=True, exist_ok=True)
        data.parent.chmod(0o711)
        self.data, self.unit = data, CGROUP / unit
        self.unit.mkdir(parents=True, exist_ok=True)
        self.log = open(f"/tmp/claworc-uml/{name}-daemon.log", "a+b")
        self.log_start = self.log.seek(0, 2)
        self.proc = subprocess.Popen(
            ["sh", "-c", f'echo $$ > {self.unit}/cgroup.procs || exit 219; exec "$@"', "sh", BINARY, "serve",
             "--listen", f"127.0.0.1:{port}", "--data-dir", str(data), "--default-network", "none",
             "--instance-services", "none", *extra], stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.log.seek(self.log_start)
            if b"claworc listening" in self.log.read():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}: " + self.daemon_log())
            time.sleep(0.05)
        else:
            raise RuntimeError("daemon did not start: " + self.daemon_log())
        self.http = requests.Session()
        self.http.headers["Origin"] = self.base   # as the dashboard: cookie-authenticated changes need it
        if setup:
            code = (data / "setup-code").read_text().strip()
            r = self.http.post(self.base + "/api/v1/setup", json={"code": code, "username": "admin", "password": "uml-password-1"})
        else:
            r = self.http.post(self.base + "/api/v1/auth/login", json={"username": "admin", "password": "uml-password-1"})
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

    def cgroup_dir(self, iid, parent=None):
        return (parent or self.unit) / "claworc" / "instances" / str(iid)


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


WRITE_PROBE = """
import mmap, os, sys, time
# O_DIRECT: the writes go to the disk now, where io.max meters them, not to the page cache.
fd = os.open("/home/claworc/io-probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
block = mmap.mmap(-1, 1 << 20)
block.write(b"x" * (1 << 20))
start = time.monotonic()
for _ in range(int(sys.argv[1])):
    os.write(fd, block)
os.fsync(fd)
os.close(fd)
print("wrote", sys.argv[1], "MiB in", round(time.monotonic() - start, 3))
"""


@check(40, "io_max_throttles_disk_writes")
def io_max(app):
    assert DATA_DISK, "the guest has no data disk"
    free = app.instance("iofree")
    limited = app.instance("iolimited", io_write_mib_per_s=2)
    view = app.get(limited)
    device = view["limits"]["io_device"]
    assert device and view["limits"]["io_write_mib_per_s"] == 2, view["limits"]
    line = (app.cgroup_dir(limited) / "io.max").read_text().strip()
    assert line == f"{device} rbps=max wbps={2 << 20} riops=max wiops=max", line

    def write(iid, mib):
        r = app.http.post(app.base + f"/api/v1/instances/{iid}/exec",
                          json={"argv": ["python3", "-c", WRITE_PROBE, str(mib)], "timeout_ms": 120000}, timeout=150)
        assert r.status_code == 200 and r.json()["exit_code"] == 0, r.text
        return float(r.json()["output"].split()[-1])

    unlimited = write(free, 8)
    throttled = write(limited, 8)
    # 8 MiB at 2 MiB/s takes about 4 s (less the first slice's allowance); the same write
    # without the limit, on the same disk, is the control.
    assert throttled >= 2.5, f"8 MiB in {throttled} s at 2 MiB/s"
    assert unlimited < throttled / 3, f"control: {unlimited} s unlimited vs {throttled} s limited"
    written = app.get(limited)["usage"]["io_write_bytes"]
    assert written >= 8 << 20, written
    # Raising the limit applies to the running instance at once.
    r = app.http.put(app.base + f"/api/v1/instances/{limited}/settings", json={"io_write_mib_per_s": 0})
    assert r.status_code == 200, r.text
    assert (app.cgroup_dir(limited) / "io.max").read_text().strip() in ("", f"{device} rbps=max wbps=max riops=max wiops=max")
    app.stop(free)
    app.stop(limited)
    return f"8 MiB: {throttled:.2f} s at 2 MiB/s vs {unlimited:.2f} s unlimited on {device}; io_write_bytes={written}"


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


SYSTEMD = CGROUP / "system.slice"


def may_enter(unit):
    """Whether systemd could start a (re)started main process in `unit`: the kernel refuses a
    process in a cgroup that delegates controllers to children (EBUSY, systemd's 219/CGROUP)."""
    probe = subprocess.run(["sh", "-c", f"echo $$ > {unit}/cgroup.procs"], capture_output=True, text=True)
    return probe.returncode == 0, probe.stderr.strip()


@check(53, "a_restarted_daemon_fits_back_into_its_systemd_unit")
def systemd_restart(_):
    SYSTEMD.mkdir(exist_ok=True)
    (SYSTEMD / "cgroup.subtree_control").write_text("+cpu +memory +pids")
    # The control: in its own unit's cgroup, the daemon delegates controllers from it, and
    # a restarted daemon could not be placed back.
    legacy = Appliance(unit="system.slice/claworc-legacy.service", port=18556, name="legacy")
    legacy.proc.kill()
    legacy.proc.wait()
    entered, why = may_enter(SYSTEMD / "claworc-legacy.service")
    assert not entered, "control: a unit whose cgroup delegates controllers must refuse a new process"

    # The fix: the instances under a second delegated unit (its placeholder process, as
    # `ExecStart=sleep infinity` would be, sits in it until the daemon moves it to a leaf).
    instances_unit = SYSTEMD / "claworc-instances.service"
    instances_unit.mkdir(exist_ok=True)
    holder = subprocess.Popen(["sh", "-c", f'echo $$ > {instances_unit}/cgroup.procs && exec sleep 100000'])
    extra = ("--cgroup-parent", "/system.slice/claworc-instances.service", "--unsafe-test-first-slot", "200")
    app = Appliance(unit="system.slice/claworc.service", port=18557, name="unit", extra=extra)
    iid = app.instance("unit53", memory_max_mib=200, memory_high_mib=180)
    cg = app.cgroup_dir(iid, parent=instances_unit)
    before = sorted((cg / "cgroup.procs").read_text().split())   # the init (no services)
    assert (cg / "memory.max").read_text().strip() == str(200 << 20)
    assert (SYSTEMD / "claworc.service" / "cgroup.subtree_control").read_text().strip() == "", \
        "the daemon's own unit cgroup must delegate nothing"
    assert str(holder.pid) in (instances_unit / "idle" / "cgroup.procs").read_text().split()
    app.proc.kill()   # kill -9, as a crash; systemd (KillMode=process) then restarts the unit
    app.proc.wait()
    entered, why = may_enter(SYSTEMD / "claworc.service")
    assert entered, f"the restarted daemon could not enter its unit: {why}"
    again = Appliance(unit="system.slice/claworc.service", port=18557, name="unit", extra=extra, setup=False)
    try:
        after = again.get(iid)
        assert after["state"] == "running", after
        assert sorted((cg / "cgroup.procs").read_text().split()) == before, "the same init, never restarted"
        assert (cg / "memory.max").read_text().strip() == str(200 << 20)
        assert again.run(iid, "print('alive')")["output"].strip() == "alive"
        again.stop(iid)
    finally:
        again.proc.terminate()
        again.proc.wait(30)
        holder.kill()
    return f"control refused ({why or 'EBUSY'}); with --cgroup-parent the restarted daemon entered its unit and re-attached"


def main():
    app = Appliance()
    try:
        for fn in (memory_max, memory_high, pids_max, cpu_max, cgroup_namespace, io_max):
            fn(app)
    finally:
        app.proc.terminate()
        try:
            app.proc.wait(30)
        except subprocess.TimeoutExpired:
            app.proc.kill()
    systemd_restart(None)
    for number, name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'} {number} {name}: {detail}")
    passed = sum(1 for r in results if r[2])
    print(f"{passed} passed, {len(results) - passed} failed")
    if any(not r[2] for r in results):
        print("daemon log tail:", app.daemon_log())
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
