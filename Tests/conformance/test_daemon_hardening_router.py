"""Check 50c: enabling IPv4 forwarding for instances must not turn the appliance into a router
between the host's other networks. Two test hosts in network namespaces this test creates, on
veths to the root namespace in two subnets, routed via the host; an instance reaches a third
(a fake internet host). Nothing is sent anywhere else.

Changes net.ipv4.ip_forward and the machine-global nft table `inet claworc` (restored and
removed afterwards): run under `flock /tmp/claworc-egress.lock`. Any other claworc daemon
starting meanwhile rewrites that table, so run it when no other daemon is starting.
"""
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

from claworc_harness import Daemon, bootstrap_admin


def fresh_dir():
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-router-"))
    base.chmod(0o711)
    return base


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check)


class RoutedHost:
    """A network namespace on a veth to the root namespace, routed via the host, with an
    HTTP server on port 8080."""

    def __init__(self, name, addr, host_addr):
        self.name, self.addr = name, addr
        self.veth = f"{name[-5:]}h"
        # The names are this test's own: what an interrupted run left of them goes first.
        sh("ip", "netns", "delete", name, check=False)
        sh("ip", "link", "delete", self.veth, check=False)
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "addr", "add", f"{host_addr}/24", "dev", self.veth)
        sh("ip", "link", "set", self.veth, "up")
        sh("ip", "-n", name, "addr", "add", f"{addr}/24", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "route", "add", "default", "via", host_addr)
        self.server = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-m", "http.server", "8080",
                                        "--bind", addr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.reaches(addr, 1):   # readiness: the server accepts inside its namespace
            assert time.monotonic() < deadline, f"test host {name} did not come up"
            time.sleep(0.05)

    def reaches(self, addr, timeout=1.5):
        return sh("ip", "netns", "exec", self.name, sys.executable, "-c",
                  f"import socket; socket.create_connection(('{addr}', 8080), {timeout})", check=False).returncode == 0

    def close(self):
        self.server.kill()
        self.server.wait()
        sh("ip", "netns", "delete", self.name, check=False)
        sh("ip", "link", "delete", self.veth, check=False)


FORWARD = pathlib.Path("/proc/sys/net/ipv4/ip_forward")


def guard_drops():
    out = sh("nft", "-a", "list", "chain", "inet", "claworc", "forward", check=False).stdout
    m = re.search(r"counter packets (\d+) bytes \d+ drop comment \"claworc: not a router\"", out)
    return int(m.group(1)) if m else None


def test_50c_appliance_is_not_a_router():
    original = FORWARD.read_text().strip()
    hosts = []
    base = fresh_dir()
    daemon = None
    try:
        a = RoutedHost("cwtest-rta", "10.99.1.2", "10.99.1.1")
        hosts.append(a)
        b = RoutedHost("cwtest-rtb", "10.99.2.2", "10.99.2.1")
        hosts.append(b)
        inet = RoutedHost("cwtest-rti", "203.0.113.10", "203.0.113.1")
        hosts.append(inet)
        sh("nft", "delete", "table", "inet", "claworc", check=False)

        # Positive control: with forwarding on and no claworc table, the host routes a → b.
        FORWARD.write_text("1\n")
        assert a.reaches(b.addr), "the test network routes when the host forwards"
        FORWARD.write_text("0\n")
        assert not a.reaches(b.addr)

        # The daemon turns forwarding on for its instances only.
        daemon = Daemon(base / "data", extra_args=["--default-network", "egress", "--instance-services", "none"]).start()
        assert FORWARD.read_text().strip() == "1"
        assert not a.reaches(b.addr), "the appliance routed between two of the host's networks"
        assert (guard_drops() or 0) > 0, sh("nft", "list", "table", "inet", "claworc").stdout
        admin = bootstrap_admin(daemon)
        inst = admin.create("router-check")
        assert admin.post(f"/api/v1/instances/{inst['id']}/start").status_code == 200
        probe = ("import socket\ntry:\n socket.create_connection(('203.0.113.10', 8080), 3); print('ok')\n"
                 "except OSError as e: print('fail', e)")
        r = admin.post(f"/api/v1/instances/{inst['id']}/exec", {"argv": ["python3", "-c", probe], "timeout_ms": 20000})
        assert r.status_code == 200 and r.json()["output"].strip() == "ok", r.text

        # A restart finds forwarding on, but it was the appliance's doing: still no router.
        daemon.stop()
        daemon.start()
        assert not a.reaches(b.addr), "a restarted daemon took its own forwarding for the host's"

        # Forwarding someone else switched on is left alone (and logged).
        daemon.stop()
        sh("nft", "delete", "table", "inet", "claworc")
        FORWARD.write_text("1\n")
        daemon.start()
        assert guard_drops() is None
        assert a.reaches(b.addr), "the host's own routing was broken"
        assert "forwarding was already on" in daemon.log_text()
    finally:
        if daemon:
            daemon.stop()
        for h in hosts:
            h.close()
        sh("nft", "delete", "table", "inet", "claworc", check=False)
        FORWARD.write_text(original + "\n")
        shutil.rmtree(base, ignore_errors=True)
