"""Many people on one appliance, against the real daemon: users, roles and assignments seen
through every door (list, instance routes, the VNC WebSocket), tokens, and the command line
that gets a locked-out admin back in while the daemon runs."""
import subprocess

import pytest
import websocket

from claworc_harness import ADMIN, BINARY, Client


def make_user(admin, name, role="user", password="a-good-password"):
    r = admin.post("/api/v1/users", {"username": name, "password": password, "role": role})
    assert r.status_code == 201, r.text
    return r.json()["user"]


def signed_in(daemon, name, password="a-good-password"):
    c = Client(daemon)
    c.login(name, password)
    return c


def vnc_refusal(client, iid):
    """How the VNC WebSocket refuses: every handshake is upgraded (a browser never shows a
    page the status of a refused one) and refusals are close codes, 4000 + the HTTP status."""
    url = client.daemon.base_url.replace("http://", "ws://") + f"/api/v1/instances/{iid}/vnc"
    cookie = client.http.cookies.get("claworc_session", "")
    ws = websocket.create_connection(url, header=[f"Cookie: claworc_session={cookie}"], origin=client.daemon.base_url,
                                     timeout=10)
    try:
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE, (opcode, data)
        return int.from_bytes(data[:2], "big"), data[2:].decode()
    finally:
        ws.close()


def test_a_user_sees_only_assigned_instances_through_every_door(admin):
    mine, other = admin.create("assigned-one"), admin.create("not-theirs")
    bob = make_user(admin, "bob")
    assert admin.http.put(admin.url(f"/api/v1/instances/{mine['id']}/users/{bob['id']}")).status_code == 204
    assert admin.http.put(admin.url(f"/api/v1/instances/{mine['id']}/users/{bob['id']}")).status_code == 204, "idempotent"
    assigned = admin.get(f"/api/v1/instances/{mine['id']}/users").json()["users"]
    assert [u["username"] for u in assigned] == ["bob"]

    client = signed_in(admin.daemon, "bob")
    assert [i["name"] for i in client.get("/api/v1/instances").json()["instances"]] == ["assigned-one"]
    assert client.get(f"/api/v1/instances/{mine['id']}").status_code == 200
    # Another's instance answers exactly like one that does not exist.
    hidden, missing = client.get(f"/api/v1/instances/{other['id']}"), client.get("/api/v1/instances/98765")
    assert hidden.status_code == missing.status_code == 404 and hidden.json() == missing.json()
    for method, path in [("post", "start"), ("post", "stop"), ("get", "services"), ("get", "logs"), ("get", "files"),
                         ("get", "control")]:
        r = getattr(client.http, method)(client.url(f"/api/v1/instances/{other['id']}/{path}"), timeout=30)
        assert r.status_code == 404, (path, r.status_code, r.text)
    assert vnc_refusal(client, other["id"]) == vnc_refusal(client, 98765) == (4404, "not_found")
    # Admin-only routes answer 403 to a user, whatever the id.
    for method, path, body in [("post", "/api/v1/instances", {"name": "x"}), ("get", "/api/v1/users", None),
                               ("get", "/api/v1/audit", None), ("delete", f"/api/v1/instances/{mine['id']}", None),
                               ("put", f"/api/v1/instances/{mine['id']}/users/{bob['id']}", None)]:
        r = getattr(client.http, method)(client.url(path), json=body, timeout=30)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (path, r.status_code, r.text)

    # Unassigning takes the instance away at once.
    assert admin.delete(f"/api/v1/instances/{mine['id']}/users/{bob['id']}").status_code == 204
    assert client.get("/api/v1/instances").json()["instances"] == []
    assert client.get(f"/api/v1/instances/{mine['id']}").status_code == 404


def test_tokens_and_cross_origin_refusals(admin):
    bob = make_user(admin, "tina")
    client = signed_in(admin.daemon, "tina")
    r = client.post("/api/v1/auth/tokens", {"name": "script", "expires_in_days": 30})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    import requests
    assert requests.get(admin.url("/api/v1/auth/me"), headers=bearer, timeout=30).json()["user"]["username"] == "tina"
    # A cookie-authenticated change from another site is refused; the same change with the token is not.
    forged = requests.post(admin.url("/api/v1/auth/tokens"), json={"name": "forged"}, timeout=30,
                           cookies={"claworc_session": client.http.cookies["claworc_session"]},
                           headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "cross_origin"
    assert requests.post(admin.url("/api/v1/auth/tokens"), json={"name": "by-token"}, headers=bearer,
                         timeout=30).status_code == 201
    names = [t["name"] for t in client.get("/api/v1/auth/tokens").json()["tokens"]]
    assert names == ["script", "by-token"] and all("token" not in t for t in client.get("/api/v1/auth/tokens").json()["tokens"])
    # Disabling the owner kills the token and the sessions.
    assert admin.http.patch(admin.url(f"/api/v1/users/{bob['id']}"), json={"disabled": True}, timeout=30).status_code == 200
    assert requests.get(admin.url("/api/v1/auth/me"), headers=bearer, timeout=30).status_code == 401
    assert client.get("/api/v1/auth/me").status_code == 401


def cli(daemon, *args, stdin=""):
    return subprocess.run([str(BINARY), *args, "--data-dir", str(daemon.data_dir)], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_command_line_gets_a_locked_out_admin_back_in_while_the_daemon_runs(admin):
    other = make_user(admin, "second-admin", role="admin")
    assert admin.http.patch(admin.url(f"/api/v1/users/{other['id']}"), json={"disabled": True}, timeout=30).status_code == 200
    session = Client(admin.daemon)
    session.login()

    listed = cli(admin.daemon, "user", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[1]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["admin"][2] == "admin" and rows["second-admin"][3] == "yes"

    reset = cli(admin.daemon, "admin", "reset-password", "admin", stdin="a-brand-new-password\n")
    assert reset.returncode == 0, reset.stderr
    assert session.get("/api/v1/auth/me").status_code == 401, "the old sessions ended"
    assert Client(admin.daemon).post("/api/v1/auth/login", {"username": ADMIN[0], "password": ADMIN[1]}).status_code == 401
    fresh = Client(admin.daemon)
    fresh.login(ADMIN[0], "a-brand-new-password")

    made = cli(admin.daemon, "admin", "create", "rescuer", stdin="rescuer-password\n")
    assert made.returncode == 0, made.stderr
    Client(admin.daemon).login("rescuer", "rescuer-password")
    assert cli(admin.daemon, "admin", "create", "rescuer", stdin="whatever-password\n").returncode == 1
    unknown = cli(admin.daemon, "admin", "reset-password", "nobody", stdin="x-long-password\n")
    assert unknown.returncode == 1 and "no user named 'nobody'" in unknown.stderr
    weak = cli(admin.daemon, "admin", "create", "weakling", stdin="short\n")
    assert weak.returncode == 1 and "weakling" not in cli(admin.daemon, "user", "list").stdout
    assert cli(admin.daemon, "admin", "frobnicate").returncode == 64

    actions = [(e["action"], e["actor"]) for e in fresh.get("/api/v1/audit?actor=cli").json()["entries"]]
    assert ("user.update", "cli") in actions and ("user.create", "cli") in actions
