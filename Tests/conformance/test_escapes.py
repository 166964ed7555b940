"""Checks 41-44 and 51: the ways out a security review found, each replayed as the attacker
would against a real instance of a real daemon.

41  The agent gets into Chromium: writes a PKCS#11 module entry into Chromium's NSS database,
    has Chromium restarted and opens chrome://certificate-manager/ over the DevTools port; or
    opens /proc/<chromium pid>/mem. Chromium must run under its own uid with a home the agent
    cannot write, out of the agent's reach.
42  The kernel surface behind most container escapes: netlink families nothing in an instance
    needs (NETLINK_NETFILTER first) and AF_PACKET are refused by the baseline filter, which
    Chromium, the one service allowed to create namespaces, carries too.
43  PID 1 keeps the operator's controlling terminal: the init must start its own session with
    no controlling tty, and TIOCSTI / TIOCLINUX are refused.
44  Image mode: instance root plants a library and /etc/ld.so.preload; the next PID 1 must not
    load it.
52  Image mode: instance root replaces a directory the launcher mounts on (/home) with a
    symlink to a host path; the next launch must not follow it onto the host.
51  Tighter than Docker's default where it was looser: personality values, kcmp, the NUMA
    policy calls; /proc and /sys masks that cannot be skipped silently.
"""
import errno
import json
import os
import pathlib
import pty
import select
import shutil
import signal
import subprocess
import tempfile
import time
import types

import pytest

from claworc_harness import BINARY, LISTENING, Daemon, bootstrap_admin, init_pid, run_inside
from image_base import image_appliance
from sandbox_kit import AGENT_UID, Instance, descendants, ename, poll_until, status_fields
from sandbox_kit import inst, probe_binary  # noqa: F401  (fixtures)

MARKER = "/tmp/claworc-evil-loaded"
EVIL_SOURCE = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
// Runs wherever it is loaded: records who loaded it and whether nf_tables' netlink family
// was reachable from there.
__attribute__((constructor)) static void planted(void) {
    int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    char line[128];
    int n = snprintf(line, sizeof line, "pid=%d uid=%d netfilter=%d\n", getpid(), getuid(), nl >= 0);
    char path[64];
    snprintf(path, sizeof path, "%s-%d", "MARKER", getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd >= 0) { write(fd, line, n); close(fd); }
    if (nl >= 0) close(nl);
}
""".replace("MARKER", MARKER)


@pytest.fixture(scope="module")
def evil_library():
    out = pathlib.Path(tempfile.mkdtemp(prefix="claworc-evil-"))
    (out / "evil.c").write_text(EVIL_SOURCE)
    build = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(out / "evil.so"), str(out / "evil.c")],
                           capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"cannot build the planted library: {build.stderr}")
    yield out / "evil.so"
    shutil.rmtree(out, ignore_errors=True)


def chromium_processes(instance):
    """Host pid → (pid inside the instance, uids) of every process of the Chromium service."""
    browser = instance.service_host_pid("chromium")
    found = {}
    for pid in descendants(browser):
        try:
            fields = status_fields(pid)
        except OSError:
            continue   # exited meanwhile
        nspids = fields["NSpid"].split()
        found[pid] = (int(nspids[1]), {int(u) for u in fields["Uid"].split()})
    return found


def devtools(instance, method, path):
    """An HTTP request to Chromium's DevTools port inside the instance, made from the host in
    the instance's network namespace only (the agent's own way to drive the browser)."""
    script = ("import sys, urllib.request; r = urllib.request.Request('http://127.0.0.1:9222' + sys.argv[2], "
              "method=sys.argv[1]); print(urllib.request.urlopen(r, timeout=10).read().decode())")
    out = run_inside(instance.init, "python3", "-c", script, method, path, namespaces=("-n",))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# ---- 41 ---------------------------------------------------------------------------------------

def test_41_agent_cannot_reach_into_chromium(inst, evil_library):
    agent_uid = inst.base + AGENT_UID
    others = {agent_uid, inst.base}
    for name in ("xvfb", "vnc"):
        others |= {int(u) for u in status_fields(inst.service_host_pid(name))["Uid"].split()}
    processes = chromium_processes(inst)
    browser_uids = set().union(*(uids for _, uids in processes.values()))
    assert len(browser_uids) == 1 and not browser_uids & others, \
        f"Chromium runs as {browser_uids}; the agent and the other services as {others}"

    # The memory route: /proc/<pid>/mem of every Chromium process, opened by the agent.
    opened = {ns_pid: inst.probe("open-rw", f"/proc/{ns_pid}/mem") for ns_pid, _ in processes.values()}
    assert all(r["errno"] in (errno.EACCES, errno.EPERM) for r in opened.values()), \
        {pid: ename(r["errno"]) for pid, r in opened.items()}
    kill = inst.probe("kill", inst.service("chromium")["pid"], 0)
    assert kill["errno"] == errno.EPERM, f"the agent may signal Chromium: {ename(kill['errno'])}"

    # The file route. Chromium's NSS database lives under its HOME.
    browser_env = dict(item.split("=", 1) for item in
                       pathlib.Path(f"/proc/{inst.service_host_pid('chromium')}/environ").read_text().split("\0") if "=" in item)
    nssdb = f"{browser_env['HOME']}/.pki/nssdb"
    shutil.copyfile(evil_library, inst.home / "evil.so")
    os.chown(inst.home / "evil.so", agent_uid, agent_uid)
    entry = "library=/home/claworc/evil.so\\nname=planted\\n"
    planted = inst.exec(["sh", "-c", f"mkdir -p {nssdb} && printf '{entry}' > {nssdb}/pkcs11.txt && echo planted"])
    assert planted["output"].strip() != "planted", f"the agent wrote Chromium's NSS database at {nssdb}"
    # Also the agent's own ~/.pki, which a Chromium sharing its HOME would read.
    own = inst.exec(["sh", "-c", f"mkdir -p ~/.pki/nssdb && printf '{entry}' > ~/.pki/nssdb/pkcs11.txt && echo ok"])
    assert own["output"].strip() == "ok", own

    # The supervisor restarts Chromium (the agent cannot kill it any more; root of the instance
    # stands in), then the certificate manager makes it open its NSS modules.
    old = inst.service("chromium")["pid"]
    inst.exec(["kill", "-9", str(old)], user="root")
    inst.client.wait_for(inst.iid, lambda i: any(s["name"] == "chromium" and s["state"] == "ready"
                                                 and s["pid"] != old for s in i["services"]),
                         60, "Chromium restarted")
    target = devtools(inst, "PUT", "/json/new?chrome://certificate-manager/")
    poll_until(lambda: any(t.get("id") == target["id"] and t.get("url", "").startswith("chrome://certificate-manager")
                           for t in devtools(inst, "GET", "/json/list")), 30, "the certificate manager page")
    # A negative outcome has no event to wait for: give NSS a bounded window to load the module.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        maps = {pid: pathlib.Path(f"/proc/{pid}/maps").read_text() for pid in chromium_processes(inst)
                if os.path.exists(f"/proc/{pid}/maps")}
        loaded = [pid for pid, text in maps.items() if "evil.so" in text]
        assert not loaded, f"the planted PKCS#11 module is mapped in Chromium processes {loaded}"
        markers = inst.exec(["sh", "-c", f"cat {MARKER}-* 2>/dev/null; true"], user="root")["output"]
        assert markers == "", f"the planted module ran: {markers}"
        time.sleep(0.25)


# ---- 42 ---------------------------------------------------------------------------------------

AF_NETLINK, AF_PACKET, SOCK_DGRAM, SOCK_RAW = 16, 17, 2, 3
NETLINK = {"ROUTE": 0, "SOCK_DIAG": 4, "XFRM": 6, "AUDIT": 9, "NETFILTER": 12, "KOBJECT_UEVENT": 15, "GENERIC": 16}


def socket_results(instance, user):
    cases = {f"NETLINK_{name}": [AF_NETLINK, SOCK_RAW, proto] for name, proto in NETLINK.items()}
    cases["AF_PACKET"] = [AF_PACKET, SOCK_DGRAM, 0]
    # The kernel reads the family as an int: bits above it must not open a way around the filter.
    cases["NETLINK_NETFILTER+high"] = [AF_NETLINK, SOCK_RAW, NETLINK["NETFILTER"], 1]
    results = instance.probes([["socket-raw", *args] for args in cases.values()], user=user)
    return {name: r["errno"] for name, r in zip(cases, results)}


def test_42_netlink_families_and_packet_sockets_refused(inst):
    for user in ("agent", "root"):
        got = socket_results(inst, user)
        # What Chromium needs (measured: network change notifier, device monitor) stays.
        assert got["NETLINK_ROUTE"] == 0 and got["NETLINK_KOBJECT_UEVENT"] == 0, (user, got)
        refused = {k: ename(v) for k, v in got.items() if k not in ("NETLINK_ROUTE", "NETLINK_KOBJECT_UEVENT")
                   and v != errno.EPERM}
        assert not refused, f"not refused with EPERM as {user}: {refused}"
    # Chromium's processes carry the same baseline (and nothing less): the browser has every
    # filter the agent's processes have except the add-on that forbids namespaces.
    agent_filters = int(inst.probe("status")["value"]["Seccomp_filters"])
    browser = status_fields(inst.service_host_pid("chromium"))
    assert browser["Seccomp"] == "2" and int(browser["Seccomp_filters"]) == agent_filters - 1, \
        (browser["Seccomp_filters"], agent_filters)


# ---- 51 ---------------------------------------------------------------------------------------

def test_51_tighter_than_dockers_default(inst):
    for user in ("agent", "root"):
        allowed = {v: inst.probe("personality", v, user=user)["errno"] for v in ("0", "0xffffffff", "0x20000")}
        assert all(e == 0 for e in allowed.values()), (user, allowed)
        # READ_IMPLIES_EXEC and ADDR_NO_RANDOMIZE: personalities Docker does not allow.
        for value in ("0x0400000", "0x0040000"):
            got = inst.probe("personality", value, user=user)
            assert got["errno"] in (errno.EPERM, errno.ENOSYS), f"personality({value}) as {user}: {got}"
        calls = inst.probes([["syscall", name] for name in ("kcmp", "get_mempolicy", "set_mempolicy", "mbind")], user=user)
        wrong = {r["check"]: ename(r["errno"]) for r in calls if r["errno"] != errno.EPERM}
        assert not wrong, f"not refused as {user}: {wrong}"
    # Masks of what exists on this host: firmware tables, sound cards, power capping.
    for path in ("/sys/firmware", "/proc/asound", "/sys/devices/virtual/powercap"):
        if os.path.isdir(path) and os.listdir(path):
            listing = inst.probe("ls", path, user="root")
            assert listing["errno"] == 0 and listing["value"] == [], f"{path} is not masked: {listing}"
    if not os.path.isdir("/sys/firmware"):
        pytest.fail("this host has no /sys/firmware; the mask cannot be observed")


# Checks with a daemon of their own come last: every daemon numbers its instances' id ranges
# from slot 1, and starting an instance kills whatever still runs in its range on this host,
# the module's shared instance included.

# ---- 43 ---------------------------------------------------------------------------------------

class TerminalDaemon(Daemon):
    """`claworc serve` in the foreground of a terminal, as the README runs it: a session leader
    whose controlling tty is a pseudo-terminal of the test's."""

    def start(self, timeout=30):
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        pid, master = pty.fork()
        if pid == 0:
            os.execv(str(BINARY), [str(BINARY), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir),
                                   *self.extra_args])
        self.pid, self.master = pid, master
        self.proc = types.SimpleNamespace(pid=pid)   # what the harness's init_pid looks at
        deadline, buf = time.monotonic() + timeout, b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                m = LISTENING.search(line)
                if m:
                    self.scheme, self.port = m.group(1), int(m.group(2))
                    return self
        raise RuntimeError(f"daemon did not start on its terminal:\n{buf.decode(errors='replace')}")

    def stop(self, timeout=60):
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:   # keep the terminal drained so the daemon never blocks writing to it
                if select.select([self.master], [], [], 0.2)[0]:
                    os.read(self.master, 65536)
            except OSError:
                pass
            if os.waitpid(self.pid, os.WNOHANG)[0] == self.pid:
                break
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.master)


def stat_fields(pid):
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def test_43_init_has_no_controlling_terminal(probe_binary):
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-tty-"))
    base.chmod(0o711)
    daemon = TerminalDaemon(base / "data", extra_args=["--default-network", "none", "--instance-services", "none"])
    daemon.start()
    try:
        daemon_stat = stat_fields(daemon.pid)
        assert int(daemon_stat[4]) != 0, "precondition: the daemon has a controlling terminal"
        client = bootstrap_admin(daemon)
        instance = Instance(client, "terminal", probe_binary, services=False)
        try:
            init_stat = stat_fields(instance.init)
            # Fields after the command: state, ppid, pgrp, session, tty_nr.
            assert init_stat[3] != daemon_stat[3], "the init shares the daemon's session"
            assert int(init_stat[4]) == 0, f"the init has a controlling terminal (tty_nr {init_stat[4]})"
            for user in ("agent", "root"):
                got = instance.probe("tty-inject", user=user)["value"]
                assert got["dev_tty"] == errno.ENXIO, f"/dev/tty opened as {user}: {ename(got['dev_tty'])}"
                for ioctl in ("tiocsti", "tiocsti_high", "tioclinux"):
                    assert got[ioctl] == errno.EPERM, f"{ioctl} as {user}: {ename(got[ioctl])}"
        finally:
            instance.stop()
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


# ---- 44 ---------------------------------------------------------------------------------------

def test_44_image_mode_pid1_loads_nothing_the_instance_wrote(evil_library):
    with image_appliance("claworc-preload-") as (admin, daemon, _):
        iid = admin.create("preload")["id"]
        started = admin.post(f"/api/v1/instances/{iid}/start")
        assert started.status_code == 200, started.text
        home = daemon.data_dir / "instances" / str(iid) / "home"
        shutil.copyfile(evil_library, home / "evil.so")
        # Instance root installs the library and a preload file, as a package could.
        plant = admin.post(f"/api/v1/instances/{iid}/exec", {"user": "root", "argv": [
            "sh", "-c", "cat /home/claworc/evil.so > /usr/lib/evil.so && echo /usr/lib/evil.so > /etc/ld.so.preload"
                        " && cat /proc/self/maps"]}).json()
        assert plant["exit_code"] == 0 and "/usr/lib/evil.so" in plant["output"], \
            f"positive control: processes of the instance load the planted library: {plant}"
        assert admin.post(f"/api/v1/instances/{iid}/stop").json()["state"] == "stopped"
        restarted = admin.post(f"/api/v1/instances/{iid}/start")
        assert restarted.status_code == 200, restarted.text

        init = init_pid(daemon, "preload")
        maps = pathlib.Path(f"/proc/{init}/maps").read_text()
        assert "evil.so" not in maps, "PID 1 mapped the library the instance planted"
        marker = admin.post(f"/api/v1/instances/{iid}/exec", {"user": "root", "argv": [
            "sh", "-c", f"cat {MARKER}-1 2>/dev/null; true"]}).json()
        assert "pid=1 " not in marker["output"], f"the planted library ran in PID 1: {marker['output']}"
        # Every file PID 1 maps comes from outside the instance's writable root: the sealed
        # memfd of our binary, or the host's read-only system directories.
        overlay_dev = run_inside(init, "stat", "-c", "%d", "/", namespaces=("-m",)).stdout.strip()
        files = {line.split()[5] for line in maps.splitlines() if len(line.split()) >= 6 and line.split()[5].startswith("/")}
        for path in files:
            st = run_inside(init, "stat", "-L", "-c", "%d", path, namespaces=("-m",))
            if st.returncode == 0:
                assert st.stdout.strip() != overlay_dev, f"PID 1 maps {path} from the instance's own root"
        admin.post(f"/api/v1/instances/{iid}/stop")


# ---- 52 ---------------------------------------------------------------------------------------

def test_52_image_mode_launch_never_follows_links_the_instance_made():
    # The launcher assembles the new root before pivot_root, with the host's / still its root:
    # an absolute link in the instance's layer would point there.
    bait = pathlib.Path(tempfile.mkdtemp(prefix="claworc-bait-"))
    bait.chmod(0o777)
    try:
        with image_appliance("claworc-links-") as (admin, daemon, _):
            iid = admin.create("links")["id"]
            assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
            swap = admin.post(f"/api/v1/instances/{iid}/exec", {"user": "root", "argv": [
                "sh", "-c", f"mv /home /home.old && ln -s {bait} /home && ls -ld /home"]}).json()
            assert swap["exit_code"] == 0, swap
            assert admin.post(f"/api/v1/instances/{iid}/stop").json()["state"] == "stopped"
            again = admin.post(f"/api/v1/instances/{iid}/start")
            assert list(bait.iterdir()) == [], f"the launch followed the instance's link onto the host: {list(bait.iterdir())}"
            # The link is moved aside, kept, and the instance starts with a real /home.
            assert again.status_code == 200, again.text
            after = admin.post(f"/api/v1/instances/{iid}/exec", {"user": "root", "argv": [
                "sh", "-c", "ls -d /home.claworc-moved-*; ls /home"]}).json()
            assert after["exit_code"] == 0 and after["output"].split() == [
                after["output"].split()[0], "browser", "claworc"], after
            daemon.wait_for_log("moved aside a symbolic link")
            admin.post(f"/api/v1/instances/{iid}/stop")
    finally:
        shutil.rmtree(bait, ignore_errors=True)
