"""API contract: setup, login, sessions, instance CRUD and every error case, with rollback."""
import os
import pathlib
import re
import stat
import subprocess

import pytest

from claworc_harness import ADMIN, Client, bootstrap_admin, init_pid, inits_of, processes_in_pidns


def error_of(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in r.text and "Swift" not in r.text
    return body


def test_healthz(daemon):
    r = Client(daemon).get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_setup_code_flow(daemon):
    code_file = daemon.data_dir / "setup-code"
    assert stat.S_IMODE(code_file.stat().st_mode) == 0o600
    code = daemon.setup_code()
    assert code in daemon.log_text(), "the setup code is printed on the console"
    c = Client(daemon)
    assert c.get("/api/v1/setup").json() == {"required": True}
    error_of(c.post("/api/v1/setup", {"code": "WRONG-CODE-0000", "username": "admin", "password": "long-enough"}),
             403, "invalid_setup_code")
    error_of(c.post("/api/v1/setup", {"code": code, "username": "admin", "password": "short"}), 400, "weak_password")
    error_of(c.post("/api/v1/setup", {"code": code, "username": "bad name!", "password": "long-enough"}), 400,
             "invalid_username")
    error_of(c.post("/api/v1/setup", data=b"not json"), 400, "invalid_body")
    # Failed attempts created nobody.
    assert c.get("/api/v1/setup").json() == {"required": True}
    r = c.post("/api/v1/setup", {"code": code, "username": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert {k: user[k] for k in ("id", "username", "role", "disabled")} == {"id": 1, "username": "admin", "role": "admin",
                                                                          "disabled": False}
    assert user["created_at"].endswith("Z")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert c.get("/api/v1/auth/me").json()["user"]["username"] == "admin"
    # The code is spent: file gone, endpoint closed.
    assert not code_file.exists()
    assert c.get("/api/v1/setup").json() == {"required": False}
    error_of(Client(daemon).post("/api/v1/setup", {"code": code, "username": "x", "password": "long-enough"}),
             409, "setup_complete")


def test_login_logout(admin):
    anon = Client(admin.daemon)
    error_of(anon.get("/api/v1/auth/me"), 401, "unauthorized")
    error_of(anon.post("/api/v1/auth/login", {"username": "admin", "password": "wrong-password"}), 401,
             "invalid_credentials")
    error_of(anon.post("/api/v1/auth/login", {"username": "nobody", "password": "wrong-password"}), 401,
             "invalid_credentials")
    error_of(anon.post("/api/v1/auth/login", {"username": 5}), 400, "invalid_body")
    anon.login()
    assert anon.get("/api/v1/auth/me").status_code == 200
    assert anon.post("/api/v1/auth/logout").status_code == 204
    error_of(anon.get("/api/v1/auth/me"), 401, "unauthorized")


def test_logout_invalidates_the_session_server_side(admin):
    token = admin.http.cookies.get("claworc_session")
    assert admin.post("/api/v1/auth/logout").status_code == 204
    replay = Client(admin.daemon)
    replay.http.cookies.set("claworc_session", token)
    error_of(replay.get("/api/v1/auth/me"), 401, "unauthorized")


def test_session_token_is_stored_hashed(admin):
    token = admin.http.cookies.get("claworc_session")
    db = admin.daemon.data_dir / "claworc.db"
    rows = subprocess.run(["sqlite3", str(db), "SELECT token_hash FROM sessions"], capture_output=True, text=True).stdout
    assert token not in rows
    import hashlib
    assert hashlib.sha256(token.encode()).hexdigest() in rows


def test_session_survives_daemon_restart(admin):
    admin.daemon.stop()
    admin.daemon.start()
    r = admin.get("/api/v1/auth/me")
    assert r.status_code == 200 and r.json()["user"]["username"] == "admin"


def test_sqlite_file_is_wal_with_foreign_keys_and_migrations(admin):
    db = admin.daemon.data_dir / "claworc.db"
    out = subprocess.run(["sqlite3", str(db), "PRAGMA journal_mode; SELECT version FROM schema_migrations;"],
                         capture_output=True, text=True).stdout.split()
    assert out[0] == "wal" and out[1] == "1"


def test_every_route_requires_login(daemon):
    anon = Client(daemon)
    for method, path in [("get", "/api/v1/instances"), ("post", "/api/v1/instances"), ("get", "/api/v1/instances/1"),
                         ("delete", "/api/v1/instances/1"), ("post", "/api/v1/instances/1/start"),
                         ("post", "/api/v1/instances/1/stop"), ("post", "/api/v1/instances/1/restart"),
                         ("get", "/api/v1/auth/me")]:
        r = getattr(anon, method)(path)
        error_of(r, 401, "unauthorized")


def test_instance_crud_errors(admin):
    for bad in ["", "1abc", "-abc", "Abc", "a_b", "a b", "a" * 41, "ä", "abc/def"]:
        error_of(admin.post("/api/v1/instances", {"name": bad}), 400, "invalid_name")
    error_of(admin.post("/api/v1/instances", {"nom": "x"}), 400, "invalid_body")
    error_of(admin.post("/api/v1/instances", data=b"{"), 400, "invalid_body")
    ok = admin.create("a" * 40)
    assert ok["state"] == "stopped" and ok["name"] == "a" * 40 and ok["last_error"] is None
    assert {s["name"] for s in ok["services"]} == {"xvfb", "vnc", "chromium", "agent"}
    error_of(admin.post("/api/v1/instances", {"name": "a" * 40}), 409, "name_taken")
    for path in ["/api/v1/instances/999", "/api/v1/instances/abc", "/api/v1/instances/-1"]:
        error_of(admin.get(path), 404, "not_found")
        error_of(admin.delete(path), 404, "not_found")
        error_of(admin.post(path + "/start"), 404, "not_found")
    error_of(admin.get("/api/v1/nope"), 404, "not_found")
    assert [i["name"] for i in admin.get("/api/v1/instances").json()["instances"]] == ["a" * 40]
    assert admin.delete(f"/api/v1/instances/{ok['id']}").status_code == 204
    assert admin.get("/api/v1/instances").json() == {"instances": []}
    assert not (admin.daemon.data_dir / "instances" / str(ok["id"])).exists()


def test_failed_create_leaves_nothing(admin):
    instances = admin.daemon.data_dir / "instances"
    instances.rename(instances.with_name("instances.away"))
    instances.write_text("not a directory")
    try:
        r = admin.post("/api/v1/instances", {"name": "doomed"})
        error_of(r, 500, "storage_failed")
        assert admin.get("/api/v1/instances").json() == {"instances": []}
    finally:
        instances.unlink()
        instances.with_name("instances.away").rename(instances)
    # The name is free: the failed attempt left no row behind.
    assert admin.create("doomed")["name"] == "doomed"


def test_start_stop_conflicts_and_failed_start_rollback(admin):
    inst = admin.create("rollback")
    iid = inst["id"]
    home = admin.daemon.data_dir / "instances" / str(iid) / "home"
    home.rmdir()
    home.write_text("a file where the home directory should be")
    mounts_before = pathlib.Path("/proc/self/mountinfo").read_text()
    r = admin.post(f"/api/v1/instances/{iid}/start")
    body = error_of(r, 500, "start_failed")
    assert "home" in body["error"]["message"]
    after = admin.instance(iid)
    assert after["state"] == "stopped" and "home" in after["last_error"]
    assert not inits_of(admin.daemon), "nothing of the failed launch runs"
    assert pathlib.Path("/proc/self/mountinfo").read_text() == mounts_before

    # Repaired storage: the same instance starts, and a second start is a conflict.
    home.unlink()
    home.mkdir()
    os.chown(home, 1000, 1000)
    r = admin.post(f"/api/v1/instances/{iid}/start")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "running" and r.json()["last_error"] is None
    error_of(admin.post(f"/api/v1/instances/{iid}/start"), 409, "invalid_state")
    r = admin.post(f"/api/v1/instances/{iid}/stop")
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    # Stopping a stopped instance is idempotent.
    assert admin.post(f"/api/v1/instances/{iid}/stop").json()["state"] == "stopped"


def test_launch_failure_inside_the_launcher_is_rolled_back(admin):
    """A failure in the C launcher itself (a mount of the new root fails) leaves no process."""
    inst = admin.create("badmount")
    iid = inst["id"]
    stage = admin.daemon.data_dir / "run" / "stage"
    stage.rmdir()
    stage.write_text("the stage mount point is not a directory")
    try:
        body = error_of(admin.post(f"/api/v1/instances/{iid}/start"), 500, "start_failed")
        assert "root-tmpfs" in body["error"]["message"]
        assert admin.instance(iid)["state"] == "stopped"
        assert not inits_of(admin.daemon), "nothing of the failed launch runs"
    finally:
        stage.unlink()
        stage.mkdir(mode=0o700)
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    assert admin.delete(f"/api/v1/instances/{iid}").status_code == 204


def test_delete_running_instance_stops_it(admin):
    inst = admin.create("deleteme")
    iid = inst["id"]
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    pid = init_pid(admin.daemon, "deleteme")
    pidns = os.readlink(f"/proc/{pid}/ns/pid")
    assert admin.delete(f"/api/v1/instances/{iid}").status_code == 204
    assert processes_in_pidns(pidns) == []
    assert not (admin.daemon.data_dir / "instances" / str(iid)).exists()
    error_of(admin.get(f"/api/v1/instances/{iid}"), 404, "not_found")


def test_running_instances_outlive_a_daemon_restart(admin):
    iid = admin.create("survivor")["id"]
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    stopped = admin.create("sleeper")["id"]
    init = init_pid(admin.daemon, "survivor")
    admin.daemon.stop(keep_instances=True)
    assert os.path.exists(f"/proc/{init}"), "stopping the daemon leaves its instances running"
    admin.daemon.start()
    assert admin.instance(iid)["state"] == "running"
    assert admin.instance(stopped)["state"] == "stopped"
    admin.post(f"/api/v1/instances/{iid}/stop")
    status = pathlib.Path(f"/proc/{init}/status")
    assert not status.exists() or "Z (zombie)" in status.read_text(), "stop through the API ends the init"
