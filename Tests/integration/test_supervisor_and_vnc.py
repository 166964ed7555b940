"""The init as supervisor (restarts after kill -9, zombie reaping) and the VNC path end to end."""
import os
import signal
import time

import pytest
import websocket

from claworc_harness import Client, host_pid_of, init_pid, run_inside, processes_in_pidns
from rfb import RFBClient

NAME = "supervised"


@pytest.fixture(scope="module")
def running(shared_admin):
    inst = shared_admin.create(NAME)
    assert shared_admin.post(f"/api/v1/instances/{inst['id']}/start").status_code == 200
    settled = shared_admin.wait_all_services_ready(inst["id"])
    # A clean start needs no restart: every service came up once and stayed up.
    assert [(s["name"], s["restarts"]) for s in settled["services"]] == [("xvfb", 0), ("vnc", 0), ("chromium", 0), ("agent", 0)]
    yield shared_admin, inst["id"]
    shared_admin.post(f"/api/v1/instances/{inst['id']}/stop")


def service(inst, name):
    return next(s for s in inst["services"] if s["name"] == name)


@pytest.mark.parametrize("victim", ["xvfb", "vnc", "chromium"])
def test_killed_service_is_restarted(running, victim):
    client, iid = running
    before = client.wait_all_services_ready(iid)
    old = service(before, victim)
    init = init_pid(client.daemon, NAME)
    os.kill(host_pid_of(init, old["pid"]), signal.SIGKILL)
    # Wait on the init's readiness signal for the new process, bounded by a few seconds.
    after = client.wait_for(
        iid,
        lambda i: service(i, victim)["restarts"] == old["restarts"] + 1 and service(i, victim)["pid"] != old["pid"]
        and all(s["state"] == "ready" for s in i["services"] if s["name"] != "agent"),
        timeout=20, what=f"{victim} ready again")
    assert service(after, victim)["last_exit"] == "signal 9"


def test_orphans_are_reaped_by_the_init(running):
    client, iid = running
    init = init_pid(client.daemon, NAME)
    pidns = os.readlink(f"/proc/{init}/ns/pid")
    # The shell exits at once; its background child is re-parented to the instance's PID 1.
    out = run_inside(init, "sh", "-c", "sleep 0.3 & echo $!")
    assert out.returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        zombies_or_sleepers = []
        for pid in processes_in_pidns(pidns):
            try:
                stat = open(f"/proc/{pid}/stat").read()
            except OSError:
                continue
            if "(sleep)" in stat:
                zombies_or_sleepers.append(stat.split(")")[1].split()[0])
        if not zombies_or_sleepers:
            break
        time.sleep(0.05)
    assert not zombies_or_sleepers, f"orphan not reaped: states {zombies_or_sleepers}"


def test_vnc_websocket_streams_chromium(running):
    client, iid = running
    client.wait_all_services_ready(iid)
    rfb = RFBClient(client.daemon.base_url, iid, client.http.cookies.get("claworc_session")).handshake()
    try:
        assert (rfb.width, rfb.height) == (1280, 800)
        deadline = time.monotonic() + 60
        colours = 0
        while time.monotonic() < deadline and colours < 3:
            colours = rfb.distinct_colours(rfb.frame())
        assert colours >= 3, "the framebuffer shows Chromium, not an empty display"
    finally:
        rfb.close()


def close_code(url, **kw):
    """Opens the VNC WebSocket and returns the close code the appliance answers with."""
    ws = websocket.create_connection(url, timeout=10, **kw)
    try:
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE, "no RFB byte may flow before the checks pass"
        return int.from_bytes(data[:2], "big"), data[2:].decode()
    finally:
        ws.close()


def test_vnc_websocket_refuses_strangers(running):
    client, iid = running
    cookie = [f"Cookie: claworc_session={client.http.cookies.get('claworc_session')}"]
    url = client.daemon.base_url.replace("http://", "ws://") + f"/api/v1/instances/{iid}/vnc"
    assert close_code(url) == (4401, "unauthorized")
    assert close_code(url, header=["Cookie: claworc_session=" + "0" * 64]) == (4401, "unauthorized")
    assert close_code(url, header=cookie, origin="http://evil.example") == (4403, "bad_origin")
    # Browsers always send Origin on a WebSocket handshake; a cookie without one is not a page of ours.
    assert close_code(url, header=cookie, suppress_origin=True) == (4403, "bad_origin")
    assert close_code(url.replace(f"/{iid}/", "/9999/"), header=cookie) == (4404, "not_found")


def test_vnc_of_a_stopped_instance_is_a_conflict(shared_admin):
    inst = shared_admin.create("idle")
    url = shared_admin.daemon.base_url.replace("http://", "ws://") + f"/api/v1/instances/{inst['id']}/vnc"
    cookie = [f"Cookie: claworc_session={shared_admin.http.cookies.get('claworc_session')}"]
    assert close_code(url, header=cookie) == (4409, "not_running")


def test_vnc_port_is_not_open_on_the_host(running):
    import socket
    for port in (5900, 9222):
        s = socket.socket()
        s.settimeout(2)
        try:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} must only exist inside the instance"
        finally:
            s.close()
