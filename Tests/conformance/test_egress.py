"""Check 24 (egress) and the veth side of 23: an instance reaches a fake "internet" host, and
nothing else: not a fake LAN host, not a fake link-local "metadata" host, not a service of the
host itself, not another instance, unless an admin allows a destination. Every peer is a test
host in a network namespace this test creates, or a listener this test binds on the host; no
packet is ever sent to any other address, not even to show that it would be dropped."""
import http.server
import ipaddress
import json
import pathlib
import shutil
import tempfile
import threading
import time

import pytest

from claworc_harness import Daemon, bootstrap_admin
from test_hosts import TestHost, sh

INTERNET = ("203.0.113.10", "203.0.113.1")     # TEST-NET-3: (fake host, host side)
LAN = ("192.168.77.10", "192.168.77.1")
METADATA = ("169.254.77.10", "169.254.77.1")   # link-local, where cloud metadata services live


@pytest.fixture(scope="module")
def world():
    hosts, host_service, daemon = [], None, None
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-egress-"))
    base.chmod(0o711)
    try:
        for name, addrs in (("cwtest-inet", INTERNET), ("cwtest-lan", LAN), ("cwtest-meta", METADATA)):
            hosts.append(TestHost(name, *addrs))
        # A service on the host's own address on the fake-internet link: instances must not reach it.
        host_service = http.server.ThreadingHTTPServer((INTERNET[1], 8081), http.server.BaseHTTPRequestHandler)
        threading.Thread(target=host_service.serve_forever, args=(0.1,), daemon=True).start()
        daemon = Daemon(base / "data", extra_args=["--default-network", "egress"]).start()
        yield bootstrap_admin(daemon)
    finally:
        if daemon:
            daemon.stop()
        if host_service:
            host_service.shutdown()
            host_service.server_close()
        for h in hosts:
            h.close()
        shutil.rmtree(base, ignore_errors=True)


CONNECT = """
import json, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), timeout=float(sys.argv[3]))
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    print(json.dumps({"ok": True, "reply": s.recv(12).decode(errors="replace")}))
except OSError as e:
    print(json.dumps({"ok": False, "error": type(e).__name__, "errno": e.errno}))
"""


def connect(admin, iid, host, port, timeout=2.0):
    r = admin.post(f"/api/v1/instances/{iid}/exec",
                   {"argv": ["python3", "-c", CONNECT, host, str(port), str(timeout)], "timeout_ms": 20000})
    assert r.status_code == 200, r.text
    return json.loads(r.json()["output"].strip().splitlines()[-1])


def start(admin, name):
    inst = admin.create(name)
    r = admin.post(f"/api/v1/instances/{inst['id']}/start")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["network"]["mode"] == "egress" and body["network"]["address"].startswith("10.200.")
    return body


def links():
    return sh("ip", "-o", "link").stdout


def test_24_egress_reaches_only_the_outside(world):
    admin = world
    a = start(admin, "egress-a")
    b = start(admin, "egress-b")

    # The fake internet answers.
    reached = connect(admin, a["id"], INTERNET[0], 8080)
    assert reached["ok"] and reached["reply"].startswith("HTTP/1."), reached

    # Everything else is dropped (a timeout, not a refusal: the packets never arrive): the LAN
    # and link-local test hosts, and services of the host on its fake-internet address and on
    # the instance's own gateway address.
    # Each instance has a /30: the host's side is the address just below the instance's.
    gateway = str(ipaddress.IPv4Address(a["network"]["address"]) - 1)
    # Listening once constructed (bind and listen happen there): no readiness to wait for.
    gateway_service = http.server.ThreadingHTTPServer((gateway, 8082), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=gateway_service.serve_forever, args=(0.1,), daemon=True).start()
    try:
        for host, port in [(LAN[0], 8080), (METADATA[0], 8080), (INTERNET[1], 8081), (gateway, 8082)]:
            blocked = connect(admin, a["id"], host, port, timeout=1.5)
            assert not blocked["ok"] and blocked["error"] in ("TimeoutError", "timeout"), (host, blocked)
    finally:
        gateway_service.shutdown()
        gateway_service.server_close()

    # Another instance: B listens on all its addresses; B reaches itself, A does not reach B.
    listener = threading.Thread(target=lambda: admin.post(
        f"/api/v1/instances/{b['id']}/exec",
        {"argv": ["python3", "-c", "import socket,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                  "s.bind(('0.0.0.0',8099));s.listen()\nend=time.time()+12\nwhile time.time()<end:\n s.settimeout(end-time.time())\n"
                  " try: c,_=s.accept(); c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\n'); c.close()\n except OSError: break"],
         "timeout_ms": 15000}), daemon=True)
    listener.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not connect(admin, b["id"], b["network"]["address"], 8099, 0.5)["ok"]:
        pass
    assert connect(admin, b["id"], b["network"]["address"], 8099)["ok"], "B's own listener is up"
    across = connect(admin, a["id"], b["network"]["address"], 8099, timeout=1.5)
    assert not across["ok"], across
    listener.join(20)

    # The link-local range can never be allowed (check 50b): that is where metadata lives.
    r = admin.http.put(admin.url(f"/api/v1/instances/{a['id']}/settings"), json={"egress_allow": [METADATA[0]]},
                       timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_setting", r.text

    # An admin allows the LAN host for A only: the drop above was the firewall's, not a
    # missing route. The entry is stored normalised.
    r = admin.http.put(admin.url(f"/api/v1/instances/{a['id']}/settings"), json={"egress_allow": [LAN[0]]}, timeout=30)
    assert r.status_code == 200 and r.json()["effective"]["egress_allow"] == [LAN[0] + "/32"], r.text
    assert admin.post(f"/api/v1/instances/{a['id']}/restart").status_code == 200
    for host in (LAN[0],):
        allowed = connect(admin, a["id"], host, 8080)
        assert allowed["ok"], (host, allowed)
        assert not connect(admin, b["id"], host, 8080, timeout=1.5)["ok"], f"the allowance of {host} is A's alone"
    assert '"cw-' in sh("nft", "-j", "list", "set", "inet", "claworc", "allow4").stdout

    # Teardown leaves no veth and no allow-list entry.
    for inst in (a, b):
        assert admin.post(f"/api/v1/instances/{inst['id']}/stop").json()["state"] == "stopped"
    assert " cw-" not in links() and ": cw-" not in links(), links()
    assert '"cw-' not in sh("nft", "-j", "list", "set", "inet", "claworc", "allow4").stdout


def test_23_isolated_instance_has_only_loopback(world):
    admin = world
    inst = admin.create("no-net")
    r = admin.http.put(admin.url(f"/api/v1/instances/{inst['id']}/settings"), json={"network": "none"}, timeout=30)
    assert r.status_code == 200, r.text
    assert admin.post(f"/api/v1/instances/{inst['id']}/start").json()["network"] == {"mode": "none", "address": None}
    out = admin.post(f"/api/v1/instances/{inst['id']}/exec", {"argv": ["ip", "-o", "link"]}).json()["output"]
    assert [l.split(":")[1].strip() for l in out.strip().splitlines()] == ["lo"], out
    assert not connect(admin, inst["id"], INTERNET[0], 8080)["ok"]
    admin.post(f"/api/v1/instances/{inst['id']}/stop")


def test_settings_are_validated(world):
    admin = world
    inst = admin.create("validated")
    url = admin.url(f"/api/v1/instances/{inst['id']}/settings")
    for body, code in [({"egress_allow": ["not-an-ip"]}, "invalid_setting"), ({"network": "wifi"}, "invalid_setting"),
                       ({"memory_max_mib": 1}, "invalid_setting"), ({"memory_maximum": 5}, "unknown_setting"),
                       ({"memory_max_mib": 512, "memory_high_mib": 1024}, "invalid_setting"),
                       ({"io_write_mib_per_s": -1}, "invalid_setting"), ({"io_read_mib_per_s": 2_000_000}, "invalid_setting")]:
        r = admin.http.put(url, json=body, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (body, r.text)
    assert admin.get(f"/api/v1/instances/{inst['id']}/settings").json()["overrides"] == {}, "nothing half-applied"
    # Where the io controller is missing (this host), disk limits are accepted but shown as
    # not enforced, never as if they were.
    r = admin.http.put(url, json={"io_write_mib_per_s": 5}, timeout=30)
    assert r.status_code == 200 and r.json()["effective"]["io_write_mib_per_s"] == 5, r.text
    limits = admin.instance(inst["id"])["limits"]
    assert limits == "unavailable" or (limits["io_device"] is None) == (limits["io_write_mib_per_s"] is None), limits
