"""The authorization matrix, against a real daemon: every operation of the OpenAPI document the
daemon serves (which ApiDocumentTests holds against the routers' own route table, so a new
route cannot be left out) × every kind of caller × an instance id the caller may or may not
see and one that does not exist → the status the operation's `x-access` class promises.

Callers: anonymous; a user not assigned to the instance ("outsider"); a user assigned to it;
an admin; an API token of a user since disabled; a session cookie past its expiry (set in the
SQLite file with the sqlite3 CLI, as time would).

Outcomes are compared as classes: 401 (code `unauthorized`), 403 (code `forbidden`), 404 for
the instance (the message of InstanceError.notFound, not a file or user that does not exist)
or "allow": anything else below 500 means the handler went past the access check (409
not_running, 403 wrong_password, 404 of a file in the home are all "allowed"); a 5xx fails. WebSockets refuse with close code
4000 + status after the upgrade (4401 counts as 401, and so on); a WebSocket request answered
without an upgrade matches no class.

Expected, from AccessPolicy:
  public            anyone; but a present, invalid bearer token is 401 on every route.
  signed-in         any signed-in user.
  admin             admins; users 403.
  instance-view/-operate   admins and assigned users; to anyone else the instance does not
                    exist (404, like an id that does not exist).
  instance-admin    admins (then 404 for an id that does not exist); users 403 whatever the
                    id, since the role is checked before the instance is looked up.
  expired session, disabled user's token, anonymous: 401 everywhere but public.
"""
import itertools
import json
import pathlib
import shutil
import subprocess
import tempfile
import uuid

import pytest
import requests
import websocket

from claworc_harness import ADMIN, Daemon, bootstrap_admin

PASSWORD = "a-good-password"
MISSING_ID = 987654
CALLERS = ["anonymous", "outsider", "assigned", "admin", "disabled_token", "expired_session"]
INSTANCE_NOT_FOUND = "The instance does not exist."


@pytest.fixture(scope="module")
def world():
    # Not under pytest's tmp (mode 700): instances reach their storage as unprivileged ids.
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-authz-"))
    base.chmod(0o711)
    # Instances start with no services: "allowed" starts and restarts are real but light.
    daemon = Daemon(base / "data", ["--instance-services", "none"]).start()
    try:
        yield World(daemon)
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


class World:
    """The daemon, its users and their credentials, the instance they are tested against."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.base = daemon.base_url
        admin = bootstrap_admin(daemon)
        self.admin_http = admin
        self.users = {name: self.make_user(name) for name in ["alice", "oscar", "dora", "eve", "spare"]}
        self.target = self.make_instance("target")
        self.cookies = {"admin": admin.http.cookies["claworc_session"],
                        "assigned": self.login("alice"), "outsider": self.login("oscar")}
        # A user's token, then the user disabled.
        r = requests.post(self.url("/api/v1/auth/tokens"), json={"name": "soon dead"}, timeout=30,
                          cookies={"claworc_session": self.login("dora")}, headers={"Origin": self.base})
        assert r.status_code == 201, r.text
        self.dead_token = r.json()["token"]
        assert admin.http.patch(self.url(f"/api/v1/users/{self.users['dora']['id']}"), json={"disabled": True},
                                timeout=30).status_code == 200
        # A session that expired: its row's expires_at moved into the past, as time would.
        self.cookies["expired_session"] = self.login("eve")
        daemon_db = daemon.data_dir / "claworc.db"
        subprocess.run(["sqlite3", str(daemon_db), "PRAGMA busy_timeout=5000; "
                        f"UPDATE sessions SET expires_at = 1 WHERE user_id = {self.users['eve']['id']};"], check=True)
        assert self.call("expired_session", "GET", "/api/v1/auth/me")[0] == 401, "the expired session still works"
        assert self.call("disabled_token", "GET", "/api/v1/auth/me")[0] == 401, "the disabled user's token still works"

    def url(self, path):
        return self.base + path

    def make_user(self, name):
        r = self.admin_http.post("/api/v1/users", {"username": name, "password": PASSWORD, "role": "user"})
        assert r.status_code == 201, r.text
        return r.json()["user"]

    def make_instance(self, prefix):
        """An instance with alice assigned (and, being admin-made, visible to the admin)."""
        inst = self.admin_http.create(f"{prefix}-{uuid.uuid4().hex[:8]}")
        r = self.admin_http.http.put(self.url(f"/api/v1/instances/{inst['id']}/users/{self.users['alice']['id']}"), timeout=30)
        assert r.status_code == 204, r.text
        return inst

    def login(self, name, password=PASSWORD):
        r = requests.post(self.url("/api/v1/auth/login"), json={"username": name, "password": password}, timeout=60)
        assert r.status_code == 200, r.text
        return r.cookies["claworc_session"]

    def credentials(self, caller):
        """(headers, cookies) of a caller; every request carries the appliance's own Origin, as its pages do."""
        headers = {"Origin": self.base}
        if caller == "disabled_token":
            headers["Authorization"] = f"Bearer {self.dead_token}"
        cookie = self.cookies.get(caller)
        return headers, ({"claworc_session": cookie} if cookie else {})

    def call(self, caller, method, path, params=None, body=None, raw=None):
        """One stateless request (no cookie jar: a login inside the matrix must not change who the caller is)."""
        headers, cookies = self.credentials(caller)
        if raw is not None:
            headers["Content-Type"] = "application/octet-stream"
        r = requests.request(method, self.url(path), params=params, json=body, data=raw, headers=headers,
                             cookies=cookies, timeout=120)
        try:
            payload = r.json()
        except ValueError:
            payload = {}
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        return r.status_code, error.get("code"), error.get("message"), r

    def websocket(self, caller, path):
        """(status, code, message) of a WebSocket: close code 4000+status, or the HTTP refusal before any upgrade."""
        headers, cookies = self.credentials(caller)
        header = [f"Cookie: claworc_session={cookies['claworc_session']}"] if cookies else []
        if "Authorization" in headers:
            header.append(f"Authorization: {headers['Authorization']}")
        try:
            ws = websocket.create_connection(self.base.replace("http://", "ws://") + path, header=header,
                                             origin=self.base, timeout=30)
        except websocket.WebSocketBadStatusException as e:
            try:
                error = json.loads(e.resp_body or b"{}").get("error", {})
            except ValueError:
                error = {}
            # Not upgraded at all: never what a WebSocket route should answer, so no class matches.
            return e.status_code, error.get("code") or "not_upgraded", error.get("message")
        try:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode != websocket.ABNF.OPCODE_CLOSE:
                return 101, None, None
            code, reason = int.from_bytes(data[:2], "big"), data[2:].decode()
            # A refusal closes with 4000 + the status the API would answer and its error code.
            message = INSTANCE_NOT_FOUND if reason == "not_found" else None
            return code - 4000 if code >= 4000 else code, reason, message
        finally:
            ws.close()


def outcome(status, code, message):
    if code == "not_upgraded":
        return f"HTTP {status} without upgrade"
    if status >= 500:
        return f"server error {status}"   # past the access check, but never what any class promises
    if status == 401 and code == "unauthorized":
        return 401
    if status == 403 and code == "forbidden":
        return 403
    if status == 404 and message == INSTANCE_NOT_FOUND:
        return 404
    return "allow"


def expected(access, caller, target):
    """What AccessPolicy promises `caller` for an operation of class `access`; target is
    None (no instance in the path), "visible" (the instance alice is assigned to) or "missing"."""
    if caller in ("anonymous", "expired_session", "disabled_token"):
        if access == "public":
            return 401 if caller == "disabled_token" else "allow"
        return 401
    is_admin = caller == "admin"
    if access in ("public", "signed-in"):
        return "allow"
    if access == "admin":
        return "allow" if is_admin else 403
    if access == "instance-admin" and not is_admin:
        return 403
    if target == "missing":
        return 404
    return "allow" if caller in ("admin", "assigned") else 404


def case_input(world, method, path, target):
    """Path, query and body for one call: minimal valid ones, chosen so the matrix never
    destroys what later calls need (the target instance, alice's assignment, the callers)."""
    unique = uuid.uuid4().hex[:8]
    iid = {"visible": world.target["id"], "missing": MISSING_ID}.get(target)
    user = world.users["alice"]["id"]
    if (method, path) == ("DELETE", "/api/v1/instances/{id}") and target == "visible":
        iid = world.make_instance("doomed")["id"]   # deleted by the callers allowed to
    if (method, path) == ("DELETE", "/api/v1/users/{user}"):
        user = world.make_user(f"doomed-{unique}")["id"]
    elif "/users/{user}" in path and method != "GET":
        user = world.users["spare"]["id"]   # role set to what it is; assigned and unassigned
    concrete = (path.replace("{id}", str(iid)).replace("{user}", str(user)).replace("{session}", "0" * 16)
                .replace("{token}", "987654").replace("{name}", "init"))
    params, body, raw = None, None, None
    if path.endswith("/files") or path.endswith("/files/content"):
        params = {"path": "/" if method == "GET" and path.endswith("/files") else f"/matrix-{unique}"}
    if method == "PUT" and path.endswith("/files/content"):
        raw = b"matrix"
    bodies = {
        ("POST", "/api/v1/setup"): {"code": "000000", "username": "late", "password": PASSWORD},
        ("POST", "/api/v1/auth/login"): {"username": "alice", "password": PASSWORD},
        # The wrong current password: 403 wrong_password is past the access check, and nothing changes.
        ("POST", "/api/v1/auth/password"): {"current_password": "not-the-password", "new_password": "another-password"},
        ("POST", "/api/v1/auth/tokens"): {"name": f"matrix {unique}"},
        ("POST", "/api/v1/users"): {"username": f"made-{unique}", "password": PASSWORD, "role": "user"},
        ("PATCH", "/api/v1/users/{user}"): {"role": "user"},
        ("POST", "/api/v1/instances"): {"name": f"made-{unique}"},
        ("POST", "/api/v1/instances/{id}/exec"): {"argv": ["true"], "timeout_ms": 5000},
        ("PUT", "/api/v1/settings/instance-defaults"): {},
        ("PUT", "/api/v1/instances/{id}/settings"): {},
        ("POST", "/api/v1/instances/{id}/files/mkdir"): {"path": f"/dir-{unique}"},
        ("POST", "/api/v1/instances/{id}/files/move"): {"from": f"/none-{unique}", "to": f"/moved-{unique}"},
    }
    body = bodies.get((method, path))
    return concrete, params, body, raw


def operations(document):
    ops = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            ops.append((method.upper(), path, op["x-access"], bool(op.get("x-websocket"))))
    # Logging out ends the caller's session: last, and the session is opened again after it.
    return sorted(ops, key=lambda o: (o[1] == "/api/v1/auth/logout", o[1], o[0]))


def test_every_operation_for_every_caller(world):
    r = requests.get(world.url("/api/v1/openapi.json"), timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json", r.headers
    ops = operations(r.json())
    assert len(ops) > 40, f"the document lists only {len(ops)} operations"
    rows, failures = [], []
    for (method, path, access, is_ws), caller in itertools.product(ops, CALLERS):
        for target in (["visible", "missing"] if "{id}" in path else [None]):
            concrete, params, body, raw = case_input(world, method, path, target)
            if is_ws:
                got = world.websocket(caller, concrete)
            else:
                got = world.call(caller, method, concrete, params, body, raw)[:3]
            want, seen = expected(access, caller, target), outcome(*got)
            rows.append((method, path, caller, target, want, seen, got[0], got[1]))
            if want != seen:
                failures.append(rows[-1])
            if path == "/api/v1/auth/logout" and caller in ("admin", "assigned", "outsider"):
                world.cookies[caller] = world.login(*{"admin": ADMIN, "assigned": ("alice", PASSWORD),
                                                      "outsider": ("oscar", PASSWORD)}[caller])
    width = max(len(f"{m} {p}") for m, p, *_ in rows)
    print(f"\nauthorization matrix: {len(ops)} operations × {len(CALLERS)} callers "
          f"(× visible/missing instance id where the path has one) = {len(rows)} cases")
    for m, p, caller, target, want, seen, status, code in rows:
        mark = "ok  " if want == seen else "FAIL"
        print(f"  {mark} {m + ' ' + p:<{width}} {caller:<16} {target or '-':<8} want {want!s:<6} got {status} {code or ''}")
    print(f"authorization matrix: {len(rows) - len(failures)} passed, {len(failures)} failed")
    assert not failures, "\n".join(f"{m} {p} as {c} ({t}): expected {w}, got {s} ({st} {code})"
                                   for m, p, c, t, w, s, st, code in failures)
