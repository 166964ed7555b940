"""Isolation of a real instance: namespaces, the assembled root, persistence and teardown.

Observations are made from inside the instance's real namespaces with nsenter, and from the
host's own /proc; every assertion would fail on an unsandboxed process."""
import os
import pathlib
import socket

import pytest

from claworc_harness import init_pid, processes_in_pidns, run_inside

NAME = "sandbox-probe"

PROBE = r"""
import errno, json, os, socket
result = {}
def attempt(path):
    try:
        with open(path, "w") as f: f.write("x")
        os.unlink(path)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
for p in ["/probe", "/etc/probe", "/usr/probe", "/var/probe", "/dev/probe", "/home/probe",
          "/tmp/probe", "/run/probe", "/dev/shm/probe", "/home/claworc/probe"]:
    result[p] = attempt(p)
result["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
result["pid1"] = open("/proc/1/cmdline", "rb").read().split(b"\0")[:2]
result["pid1"] = [x.decode() for x in result["pid1"]]
result["hostname"] = socket.gethostname()
result["ifaces"] = sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else None
result["root_entries"] = sorted(os.listdir("/"))
result["dev"] = sorted(os.listdir("/dev"))
with open("/proc/self/mountinfo") as f:
    result["mount_points"] = [line.split()[4] for line in f]
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def running(shared_admin):
    inst = shared_admin.create(NAME)
    r = shared_admin.post(f"/api/v1/instances/{inst['id']}/start")
    assert r.status_code == 200, r.text
    pid = init_pid(shared_admin.daemon, NAME)
    yield shared_admin, inst["id"], pid
    shared_admin.post(f"/api/v1/instances/{inst['id']}/stop")


def probe(pid):
    import json
    out = run_inside(pid, "python3", "-c", PROBE)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_pid1_inside_is_our_init(running):
    _, _, pid = running
    info = probe(pid)
    assert info["pid1"] == ["claworc-init", "__init"]
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    nspid = [l for l in status.splitlines() if l.startswith("NSpid:")][0].split()
    assert nspid[-1] == "1" and len(nspid) == 3, "the init is pid 1 of a nested pid namespace"


def test_host_processes_are_invisible(running):
    client, _, pid = running
    info = probe(pid)
    inside = set(info["pids"])
    # Only the instance's own processes: the init, its services and our probe.
    assert 1 in inside and len(inside) < 40
    host_daemon = client.daemon.proc.pid
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    # The daemon's pid either does not exist inside or, if the number exists, is an instance process.
    out = run_inside(pid, "python3", "-c", f"import os; print(os.path.exists('/proc/{host_daemon}/cmdline') and open('/proc/{host_daemon}/cmdline','rb').read())")
    assert b"serve" not in out.stdout.encode()
    out = run_inside(pid, "python3", "-c", "import os\nfor p in os.listdir('/proc'):\n  if p.isdigit():\n    print(open(f'/proc/{p}/cmdline','rb').read())")
    assert "serve" not in out.stdout and "pytest" not in out.stdout


def test_hostname_is_isolated(running):
    _, _, pid = running
    assert probe(pid)["hostname"] == NAME
    assert socket.gethostname() != NAME
    assert run_inside(pid, "hostname", "changed-inside").returncode == 0
    assert socket.gethostname() != "changed-inside"
    run_inside(pid, "hostname", NAME)


def test_network_namespace_has_only_loopback(running):
    _, _, pid = running
    out = run_inside(pid, "ip", "-o", "link")
    links = [line.split(":")[1].strip() for line in out.stdout.splitlines()]
    assert links == ["lo"], out.stdout
    assert "UP" in out.stdout.split("\n")[0] or "LOOPBACK,UP" in out.stdout
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_root_is_read_only_outside_home_tmp_run(running):
    _, _, pid = running
    info = probe(pid)
    for path in ["/probe", "/etc/probe", "/usr/probe", "/var/probe", "/dev/probe", "/home/probe"]:
        assert info[path] == "EROFS", (path, info[path])
    for path in ["/tmp/probe", "/run/probe", "/dev/shm/probe", "/home/claworc/probe"]:
        assert info[path] == "ok", (path, info[path])
    assert set(info["root_entries"]) <= {"bin", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "opt",
                                         "proc", "run", "sbin", "sys", "tmp", "usr", "var"}
    assert "root" not in info["root_entries"] and "work" not in info["root_entries"]


def test_dev_is_minimal(running):
    _, _, pid = running
    devs = set(probe(pid)["dev"])
    assert {"null", "zero", "random", "urandom", "tty", "pts", "shm", "ptmx"} <= devs
    assert not devs & {"vda", "sda", "mem", "kmsg", "kvm", "port"}


def test_instance_mounts_are_not_in_the_host_mount_table(running):
    client, _, pid = running
    host = pathlib.Path("/proc/self/mountinfo").read_text()
    assert "/home/claworc" not in host
    assert str(client.daemon.data_dir) not in host
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")


def test_services_run_unprivileged(running):
    client, iid, pid = running
    inst = client.wait_all_services_ready(iid)
    from claworc_harness import host_pid_of
    for svc in inst["services"]:
        if svc["name"] == "agent" and svc["pid"] is None:
            continue   # no bundle here; test_agent_service checks the agent's ids and capabilities
        host_pid = host_pid_of(pid, svc["pid"])
        status = pathlib.Path(f"/proc/{host_pid}/status").read_text()
        uid_line = [l for l in status.splitlines() if l.startswith("Uid:")][0].split()
        # uid 1000 inside the instance's user namespace is base + 1000 on the host; Chromium
        # has a uid of its own (1001), out of the agent's reach.
        base = int(pathlib.Path(f"/proc/{pid}/uid_map").read_text().split()[1])
        assert base >= 0x10000000, "root inside is an unprivileged id outside"
        inside = 1001 if svc["name"] == "chromium" else 1000
        assert uid_line[1:] == [str(base + inside)] * 4, (svc["name"], uid_line)
        cap_eff = [l for l in status.splitlines() if l.startswith("CapEff:")][0].split()[1]
        assert int(cap_eff, 16) == 0, (svc["name"], cap_eff)


def test_home_persists_across_stop_and_start(shared_admin):
    inst = shared_admin.create("persist")
    iid = inst["id"]
    assert shared_admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    pid = init_pid(shared_admin.daemon, "persist")
    assert run_inside(pid, "sh", "-c", "echo remembered > /home/claworc/note.txt && echo gone > /tmp/scratch").returncode == 0
    assert shared_admin.post(f"/api/v1/instances/{iid}/stop").json()["state"] == "stopped"
    assert shared_admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    pid = init_pid(shared_admin.daemon, "persist")
    out = run_inside(pid, "cat", "/home/claworc/note.txt")
    assert out.stdout.strip() == "remembered"
    assert run_inside(pid, "test", "-e", "/tmp/scratch").returncode != 0, "/tmp starts empty"
    shared_admin.post(f"/api/v1/instances/{iid}/stop")


def test_stop_leaves_no_process_or_mount(shared_admin):
    inst = shared_admin.create("teardown")
    iid = inst["id"]
    assert shared_admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    shared_admin.wait_all_services_ready(iid)
    pid = init_pid(shared_admin.daemon, "teardown")
    pidns = os.readlink(f"/proc/{pid}/ns/pid")
    mntns = os.readlink(f"/proc/{pid}/ns/mnt")
    netns = os.readlink(f"/proc/{pid}/ns/net")
    assert len(processes_in_pidns(pidns)) >= 4   # init + Xvfb + x11vnc + Chromium
    host_mounts = pathlib.Path("/proc/self/mountinfo").read_text()
    assert shared_admin.post(f"/api/v1/instances/{iid}/stop").json()["state"] == "stopped"
    assert processes_in_pidns(pidns) == []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                links = (os.readlink(f"/proc/{p}/ns/mnt"), os.readlink(f"/proc/{p}/ns/net"))
            except OSError:   # gone meanwhile, or a process of the host we may not inspect
                continue
            assert links[0] != mntns and links[1] != netns, p
    assert pathlib.Path("/proc/self/mountinfo").read_text() == host_mounts
