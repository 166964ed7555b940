"""Instances outlive the daemon: `kill -9` or SIGTERM of `claworc serve` leaves them running,
and the next daemon re-attaches to the same inits (same host pids) through their control
listeners; an instance whose init died meanwhile is reported `failed` with the reason.
Service changes reach the events stream as the init pushes them."""
import json
import os
import pathlib
import subprocess
import queue
import secrets
import select
import signal
import threading
import time

import pytest
import requests

from claworc_harness import Daemon, bootstrap_admin, inits_of, read_proc
from rfb import RFBClient


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = read_proc(pid, "status") or b""
    return b"Z (zombie)" not in status


class Events:
    """GET /instances/{id}/events read on a thread of its own."""

    def __init__(self, client, iid):
        self.response = client.http.get(client.url(f"/api/v1/instances/{iid}/events"), stream=True, timeout=(5, 120),
                                        headers={"Accept": "text/event-stream"})
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                if raw.startswith("data: "):
                    self.queue.put(json.loads(raw[6:]))
        except (requests.RequestException, AttributeError, ValueError):
            pass
        self.queue.put(None)

    def expect(self, predicate, timeout=60, what="an event"):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                event = self.queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            assert event is not None, f"the stream ended before {what}; saw {seen}"
            seen.append(event)
            if predicate(event):
                return seen
        raise AssertionError(f"no {what} within {timeout}s; saw {seen[-5:]}")

    def close(self):
        self.response.close()


def services_of(client, iid):
    r = client.get(f"/api/v1/instances/{iid}/services")
    assert r.status_code == 200, r.text
    return {s["name"]: s for s in r.json()["services"]}


@pytest.fixture
def pair(data_dir):
    """A daemon with two running instances (full services), both ready."""
    daemon = Daemon(data_dir).start()
    admin = bootstrap_admin(daemon)
    suffix = secrets.token_hex(3)
    ids = {}
    try:
        for name in (f"ra-{suffix}", f"rb-{suffix}"):
            ids[name] = admin.create(name)["id"]
            assert admin.post(f"/api/v1/instances/{ids[name]}/start").status_code == 200
        for iid in ids.values():
            admin.wait_all_services_ready(iid, timeout=120)
        yield daemon, admin, ids
    finally:
        if daemon.proc is None:
            daemon.start()   # a test left it down: its instances still run and must be stopped
        daemon.stop()


def test_kill_9_daemon_reattaches_same_inits(pair):
    daemon, admin, ids = pair
    before = inits_of(daemon)
    assert set(ids) <= set(before), before
    services_before = {name: services_of(admin, iid) for name, iid in ids.items()}

    daemon.kill()
    for name in ids:
        assert alive(before[name]), f"{name}'s init died with the daemon"
    earlier = daemon.log_text().count("re-attached running instances")
    daemon.start()

    line = daemon.wait_for_log("re-attached running instances", count=earlier + 1)[-1]
    assert "count=2" in line, line
    for name, iid in ids.items():
        inst = admin.instance(iid)
        assert inst["state"] == "running", inst
        assert inits_of(daemon)[name] == before[name], "the same init runs on"
        # Nothing inside was restarted: the same service processes, no new restarts.
        now = services_of(admin, iid)
        for svc, status in services_before[name].items():
            # (No bundle is installed here: the agent stays failed, as it was.)
            assert (now[svc]["pid"], now[svc]["restarts"], now[svc]["state"]) == \
                (status["pid"], status["restarts"], "failed" if svc == "agent" else "ready"), (svc, now[svc], status)

    a, b = ids.values()
    # exec, through the new control connection.
    r = admin.post(f"/api/v1/instances/{a}/exec", {"argv": ["sh", "-c", "echo reattached-$((6*7))"]})
    assert r.status_code == 200, r.text
    assert r.json()["output"].strip() == "reattached-42"
    # VNC: the RFB handshake through the WebSocket, and a real frame.
    rfb = RFBClient(daemon.base_url, b, admin.http.cookies.get("claworc_session")).handshake()
    try:
        assert (rfb.width, rfb.height) == (1280, 800)
        assert len(rfb.frame()) == 1280 * 800 * rfb.bpp // 8
    finally:
        rfb.close()
    # Logs (read from the host) and the services API's restart (a control call).
    r = admin.get(f"/api/v1/instances/{a}/logs", params={"service": "xvfb", "tail": 50})
    assert r.status_code == 200 and r.json()["lines"], r.text
    old_vnc = services_of(admin, a)["vnc"]["pid"]
    r = admin.post(f"/api/v1/instances/{a}/services/vnc/restart")
    assert r.status_code == 200, r.text
    admin.wait_for(a, lambda i: any(s["name"] == "vnc" and s["state"] == "ready" and s["pid"] != old_vnc
                                    for s in i["services"]), 60, "vnc running again as a new process")


def test_init_killed_while_daemon_down_is_failed(pair):
    daemon, admin, ids = pair
    (victim, victim_id), (survivor, survivor_id) = ids.items()
    before = inits_of(daemon)
    daemon.kill()
    # The pidfd says when the init has exited (readable), whoever its parent is now.
    pidfd = os.pidfd_open(before[victim])
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        assert select.select([pidfd], [], [], 10)[0], "the killed init did not exit"
    finally:
        os.close(pidfd)
    daemon.start()

    inst = admin.instance(victim_id)
    assert inst["state"] == "failed", inst
    assert "exited while the daemon was down" in (inst["last_error"] or ""), inst
    assert all(s["state"] == "stopped" for s in inst["services"]), inst
    # Its leftovers are gone: no process of the instance survives, and it starts again.
    assert victim not in inits_of(daemon)
    assert admin.instance(survivor_id)["state"] == "running"
    assert inits_of(daemon)[survivor] == before[survivor]
    assert admin.post(f"/api/v1/instances/{victim_id}/start").status_code == 200
    assert admin.instance(victim_id)["state"] == "running"


def test_sigterm_leaves_instances_running(pair):
    daemon, admin, ids = pair
    before = inits_of(daemon)
    daemon.stop(keep_instances=True)
    assert daemon.proc is None
    for name in ids:
        assert alive(before[name]), f"{name}'s init stopped with the daemon"
    daemon.wait_for_log("instances keep running")
    daemon.start()
    for name, iid in ids.items():
        assert admin.instance(iid)["state"] == "running"
        assert inits_of(daemon)[name] == before[name]
    # An explicit stop still stops: the API is how instances end.
    iid = next(iter(ids.values()))
    assert admin.post(f"/api/v1/instances/{iid}/stop").status_code == 200
    assert not alive(before[next(iter(ids))])


def test_service_restart_is_pushed_to_the_events_stream(pair):
    daemon, admin, ids = pair
    iid = next(iter(ids.values()))
    events = Events(admin, iid)
    try:
        first = events.expect(lambda e: e["type"] == "services", 10, "the current snapshot")
        assert first[0] == {"type": "state", "state": "running", "last_error": None}, first
        old_pid = {s["name"]: s["pid"] for s in first[-1]["services"]}["vnc"]
        assert admin.post(f"/api/v1/instances/{iid}/services/vnc/restart").status_code == 200
        # The init pushes the change: vnc ready again with a new pid. Changes within 200 ms are
        # coalesced into one push (a fast restart may never show its stopping/starting states),
        # but what happened is in the snapshot: the old process's exit.
        seen = events.expect(lambda e: e["type"] == "services" and any(
            s["name"] == "vnc" and s["state"] == "ready" and s["pid"] != old_pid for s in e["services"]),
            60, "vnc ready again with a new pid")
        last = {s["name"]: s for s in seen[-1]["services"]}["vnc"]
        assert last["last_exit"] is not None, f"the restart's exit is in the pushed snapshot: {seen}"
        # Lifecycle changes arrive on the same stream.
        assert admin.post(f"/api/v1/instances/{iid}/stop").status_code == 200
        events.expect(lambda e: e == {"type": "state", "state": "stopped", "last_error": None}, 30, "stopped")
    finally:
        events.close()


def test_events_stream_is_access_checked(pair):
    daemon, admin, ids = pair
    iid = next(iter(ids.values()))
    anonymous = requests.get(daemon.base_url + f"/api/v1/instances/{iid}/events",
                             headers={"Accept": "text/event-stream"}, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    # Another user's refusal (404, as for every instance route) is RouterTests' testEventsAreAccessChecked.
    r = admin.get(f"/api/v1/instances/{iid}/events")
    assert r.status_code == 406 and r.json()["error"]["code"] == "event_stream_required", r.text


def test_egress_instance_keeps_its_veth_and_allow_list(data_dir):
    """The restarted daemon replaces its nftables table in one transaction and puts the adopted
    instance's allow-list elements back; the veth (in the instance's namespace) never went."""
    daemon = Daemon(data_dir, extra_args=["--instance-services", "none"]).start()
    try:
        admin = bootstrap_admin(daemon)
        iid = admin.create(f"net-{secrets.token_hex(3)}")["id"]
        r = admin.http.put(admin.url(f"/api/v1/instances/{iid}/settings"),
                           json={"network": "egress", "egress_allow": ["203.0.113.0/24"]}, timeout=30)
        assert r.status_code == 200, r.text
        assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
        address = admin.instance(iid)["network"]["address"]
        slot = (int(address.split(".")[2]) * 256 + int(address.split(".")[3])) // 4
        link = pathlib.Path(f"/sys/class/net/cw-{slot}/ifindex")
        ifindex = link.read_text()

        def element_present():
            out = subprocess.run(["nft", "list", "set", "inet", "claworc", "allow4"], capture_output=True, text=True).stdout
            return f'"cw-{slot}" . 203.0.113.0/24' in out

        assert element_present()
        daemon.kill()
        daemon.start()
        inst = admin.instance(iid)
        assert inst["state"] == "running" and inst["network"]["address"] == address, inst
        assert link.read_text() == ifindex, "the same veth"
        assert element_present(), "the allow-list element is back"
        r = admin.post(f"/api/v1/instances/{iid}/exec", {"argv": ["cat", "/sys/class/net/eth0/operstate"]})
        assert r.status_code == 200 and r.json()["output"].strip() == "up", r.text
    finally:
        if daemon.proc is None:
            daemon.start()
        daemon.stop()
