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
import tempfile

from claworc_harness import Daemon, bootstrap_admin
from test_hosts import TestHost, sh


def fresh_dir():
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-router-"))
    base.chmod(0o711)
    return base


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
        a = TestHost("cwtest-rta", "10.99.1.2", "10.99.1.1", routed=True)
        hosts.append(a)
        b = TestHost("cwtest-rtb", "10.99.2.2", "10.99.2.1", routed=True)
        hosts.append(b)
        inet = TestHost("cwtest-rti", "203.0.113.10", "203.0.113.1", routed=True)
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
        daemon.wait_for_log("forwarding was already on")
    finally:
        if daemon:
            daemon.stop()
        for h in hosts:
            h.close()
        sh("nft", "delete", "table", "inet", "claworc", check=False)
        FORWARD.write_text(original + "\n")
        shutil.rmtree(base, ignore_errors=True)
