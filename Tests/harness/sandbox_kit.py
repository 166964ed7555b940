"""The conformance suite's kit: the probe (probe.c, a static program of ours run inside an
instance through the admin exec API), an `Instance` wrapper around a running instance with the
probe in its home, the fixtures that make them, and host-side helpers that observe processes
through /proc. Test modules import what they use from here (fixtures included)."""
import errno
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import tempfile
import time

import pytest

from claworc_harness import host_pid_of, init_pid

PROBE_SOURCE = pathlib.Path(__file__).resolve().parents[1] / "conformance" / "probe.c"
PROBE = "/home/claworc/probe"          # where the probe is inside every instance
AGENT_UID = 1000
ID_RANGE = 65536
INIT_CAPS = {0: "CHOWN", 1: "DAC_OVERRIDE", 3: "FOWNER", 5: "KILL", 6: "SETGID", 7: "SETUID", 8: "SETPCAP"}
INIT_CAP_MASK = sum(1 << bit for bit in INIT_CAPS)
CAP_LINES = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
SERVICES = ("xvfb", "vnc", "chromium")
MiB = 1 << 20


def ename(n):
    return errno.errorcode.get(n, str(n)) if n else "OK"


# ---- host-side helpers --------------------------------------------------------------------

def status_fields(pid):
    text = pathlib.Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def process_state(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def start_time(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def descendants(root_pid):
    """Host pids of root_pid and every process below it (nested pid namespaces included),
    each with its start time so a recycled pid is not mistaken for a survivor."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(pathlib.Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [root_pid]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return {pid: start_time(pid) for pid in found if start_time(pid) is not None}


def still_alive(snapshot):
    return {pid for pid, started in snapshot.items() if start_time(pid) == started}


def cmdline(pid):
    """The command line as one string to search in: Chromium rewrites its argv into a single
    space-separated string, so its words cannot be told apart by the NULs."""
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def mountinfo(pid="self"):
    return pathlib.Path(f"/proc/{pid}/mountinfo").read_text()


def poll_until(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---- the instance under test --------------------------------------------------------------

class Instance:
    """A running instance with the probe installed in its home."""

    def __init__(self, client, name, probe_binary, services=True):
        self.client = client
        self.name = name
        created = client.create(name)
        self.iid = created["id"]
        r = client.post(f"/api/v1/instances/{self.iid}/start")
        assert r.status_code == 200, r.text
        self.running = True
        if services:
            client.wait_all_services_ready(self.iid)
        self.init = init_pid(client.daemon, name)
        uid_map = pathlib.Path(f"/proc/{self.init}/uid_map").read_text().split()
        assert uid_map[0] == "0" and uid_map[2] == str(ID_RANGE), uid_map
        self.base = int(uid_map[1])
        self.dir = client.daemon.data_dir / "instances" / str(self.iid)
        self.home = self.dir / "home"
        self.log = self.dir / "instance.log"
        target = self.home / "probe"
        shutil.copyfile(probe_binary, target)
        os.chown(target, self.base + AGENT_UID, self.base + AGENT_UID)
        os.chmod(target, 0o755)

    # exec API
    def exec(self, argv, user="agent", timeout_ms=30_000):
        r = self.client.post(f"/api/v1/instances/{self.iid}/exec",
                             {"argv": list(argv), "user": user, "timeout_ms": timeout_ms})
        assert r.status_code == 200, f"exec {argv} as {user}: {r.status_code} {r.text}"
        return r.json()

    def probe(self, *args, user="agent"):
        """Runs one probe subcommand; returns its JSON line."""
        result = self.exec([PROBE, *map(str, args)], user=user)
        lines = [line for line in result["output"].splitlines() if line.startswith("{")]
        assert result["exit_code"] == 0 and len(lines) == 1, f"probe {args} as {user}: {result}"
        return json.loads(lines[0])

    def probes(self, commands, user="agent"):
        """Runs several probe subcommands in one exec (a shell loop); returns their JSON lines."""
        script = "; ".join(shlex.join([PROBE, *map(str, c)]) for c in commands)
        result = self.exec(["sh", "-c", script], user=user)
        lines = [json.loads(line) for line in result["output"].splitlines() if line.startswith("{")]
        assert result["exit_code"] == 0 and len(lines) == len(commands), f"{commands} as {user}: {result}"
        return lines

    # services
    def view(self):
        return self.client.instance(self.iid)

    def service(self, name):
        return next(s for s in self.view()["services"] if s["name"] == name)

    def service_host_pid(self, name):
        return host_pid_of(self.init, self.service(name)["pid"])

    def stop(self):
        if self.running:
            self.running = False
            return self.client.post(f"/api/v1/instances/{self.iid}/stop")


@pytest.fixture(scope="module")
def probe_binary():
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the conformance probe (gcc -static, glibc static)")
    out_dir = pathlib.Path(tempfile.mkdtemp(prefix="claworc-probe-"))
    binary = out_dir / "probe"
    build = subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(PROBE_SOURCE)],
                           capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"cannot build the probe: {build.stderr}")
    yield binary
    shutil.rmtree(out_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def inst(shared_admin, probe_binary):
    instance = Instance(shared_admin, "conformance", probe_binary)
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def inst_b(shared_admin, probe_binary, inst):
    instance = Instance(shared_admin, "conformance-b", probe_binary)
    yield instance
    instance.stop()


