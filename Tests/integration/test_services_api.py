"""The services API of a running instance: the init's view of its services and the explicit
restart (the way back from `failed`, whose start limit the Swift supervisor tests drive)."""
from claworc_harness import host_pid_of, init_pid


def error_of(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"]["code"] == code, r.text


def test_services_listed_and_restarted(admin):
    iid = admin.create("svc")["id"]
    error_of(admin.get(f"/api/v1/instances/{iid}/services"), 409, "not_running")
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    admin.wait_all_services_ready(iid)
    services = {s["name"]: s for s in admin.get(f"/api/v1/instances/{iid}/services").json()["services"]}
    assert set(services) == {"xvfb", "vnc", "chromium", "agent"}, services
    assert all(s["state"] == "ready" for n, s in services.items() if n != "agent"), services
    # No bundle installed: the agent is failed with the remedy, and nothing else suffers.
    assert services["agent"]["state"] == "failed" and "an admin installs one under Agent" in services["agent"]["reason"], services
    init = init_pid(admin.daemon, "svc")
    old = host_pid_of(init, services["vnc"]["pid"])

    r = admin.post(f"/api/v1/instances/{iid}/services/vnc/restart")
    assert r.status_code == 200, r.text
    after = admin.wait_for(iid, lambda i: any(s["name"] == "vnc" and s["state"] == "ready" and s["pid"] != services["vnc"]["pid"]
                                              for s in i["services"]), 30, "vnc restarted")
    vnc = next(s for s in after["services"] if s["name"] == "vnc")
    assert host_pid_of(init, vnc["pid"]) != old
    # Only the one service: Xvfb and Chromium kept their processes.
    for name in ("xvfb", "chromium"):
        assert next(s for s in after["services"] if s["name"] == name)["pid"] == services[name]["pid"], name

    error_of(admin.post(f"/api/v1/instances/{iid}/services/nope/restart"), 404, "no_such_service")
    error_of(admin.post(f"/api/v1/instances/999/services/vnc/restart"), 404, "not_found")
    admin.post(f"/api/v1/instances/{iid}/stop")
