"""Passkeys against a real daemon, answered by a software authenticator written for the test
(Tests/harness/soft_authenticator.py: ES256 keys from the `cryptography` package, CBOR by hand).

The daemon listens on 127.0.0.1, and an IP address cannot be an RP ID, so requests carry
`Host: localhost:PORT` (what a browser at http://localhost:PORT sends): RP ID `localhost`,
origin `http://localhost:PORT`. Each refusal breaks one thing in an otherwise valid answer and
expects a 4xx with the `{"error": {"code", "message"}}` envelope and a specific code.
"""
from __future__ import annotations

import hashlib
import shutil
import sqlite3
import tempfile
import time
import pathlib

import pytest

from claworc_harness import ADMIN, Client, Daemon, bootstrap_admin
from soft_authenticator import AT, UP, UV, SoftKey, assertion, b64url, registration, unb64url


class PasskeyClient(Client):
    """A JSON client that reaches the daemon as http://localhost:PORT."""

    def __init__(self, daemon):
        super().__init__(daemon)
        self.http.headers["Host"] = f"localhost:{daemon.port}"

    @property
    def origin(self):
        return f"http://localhost:{self.daemon.port}"

    def url(self, path):
        # As the dashboard loaded from http://localhost:PORT (cookie-authenticated changes
        # must come from the host they are sent to).
        full = super().url(path)
        self.http.headers["Origin"] = self.origin
        return full

    def patch(self, path, json=None):
        return self.http.patch(self.url(path), json=json, timeout=30)

    def register(self, key: SoftKey, name="laptop", **breakage):
        options = self.post("/api/v1/auth/passkeys/register/options").json()["publicKey"]
        return self.post("/api/v1/auth/passkeys/register", {
            "name": name, "credential": registration(key, options["challenge"], self.origin, "localhost", **breakage)})

    def login_options(self):
        r = self.post("/api/v1/auth/passkeys/login/options")
        assert r.status_code == 200, r.text
        return r.json()["publicKey"]


def refused(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    return body


def fresh_base():
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-test-"))
    base.chmod(0o711)
    return base


@pytest.fixture(scope="module")
def passkey_daemon():
    base = fresh_base()
    d = Daemon(base / "data").start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def owner(passkey_daemon):
    bootstrap_admin(passkey_daemon)
    client = PasskeyClient(passkey_daemon)
    client.login()
    return client


def handle(user_id: int) -> bytes:
    return user_id.to_bytes(8, "big")


def registered_key(owner: PasskeyClient, **kw) -> SoftKey:
    key = SoftKey(**kw)
    r = owner.register(key)
    assert r.status_code == 201, r.text
    return key


def anonymous(daemon) -> PasskeyClient:
    return PasskeyClient(daemon)


# ---- the happy path and management ----------------------------------------------------------

def test_register_then_sign_in_with_the_passkey_only(passkey_daemon, owner):
    options = owner.post("/api/v1/auth/passkeys/register/options").json()["publicKey"]
    assert options["rp"]["id"] == "localhost"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert {p["alg"] for p in options["pubKeyCredParams"]} == {-7, -8, -257}
    assert len(unb64url(options["challenge"])) == 32
    me = owner.get("/api/v1/auth/me").json()["user"]
    assert unb64url(options["user"]["id"]) == handle(me["id"])

    key = SoftKey()
    r = owner.post("/api/v1/auth/passkeys/register", {
        "name": "  Laptop  ", "credential": registration(key, options["challenge"], owner.origin, "localhost")})
    assert r.status_code == 201, r.text
    passkey = r.json()["passkey"]
    assert passkey["name"] == "Laptop" and passkey["algorithm"] == "ES256" and passkey["last_used_at"] is None

    # The next registration excludes it; the same credential cannot be registered twice.
    again = owner.post("/api/v1/auth/passkeys/register/options").json()["publicKey"]
    assert b64url(key.credential_id) in [c["id"] for c in again["excludeCredentials"]]
    refused(owner.post("/api/v1/auth/passkeys/register", {
        "name": "dup", "credential": registration(key, again["challenge"], owner.origin, "localhost")}), 409, "passkey_exists")

    # A browser that never signed in: options, then the assertion, and it has a session.
    visitor = anonymous(passkey_daemon)
    refused(visitor.get("/api/v1/auth/me"), 401, "unauthorized")
    challenge = visitor.login_options()["challenge"]
    assert visitor.http.cookies.get("claworc_passkey_login")
    r = visitor.post("/api/v1/auth/passkeys/login", {
        "credential": assertion(key, challenge, visitor.origin, "localhost", handle(me["id"]))})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["username"] == ADMIN[0]
    assert visitor.get("/api/v1/auth/me").json()["user"]["id"] == me["id"]
    assert not visitor.http.cookies.get("claworc_passkey_login")

    listed = {p["id"]: p for p in owner.get("/api/v1/auth/passkeys").json()["passkeys"]}
    assert listed[passkey["id"]]["last_used_at"] is not None


def test_rename_and_delete_only_ones_own(passkey_daemon, owner):
    key = SoftKey()
    passkey = owner.register(key, name="old name").json()["passkey"]
    r = owner.patch(f"/api/v1/auth/passkeys/{passkey['id']}", {"name": "new name"})
    assert r.status_code == 200 and r.json()["passkey"]["name"] == "new name", r.text
    refused(owner.patch(f"/api/v1/auth/passkeys/{passkey['id']}", {"name": "\u0007"}), 400, "invalid_name")

    # A second user, made in the store (this branch has no user API), with the admin's password.
    db = sqlite3.connect(passkey_daemon.data_dir / "claworc.db")
    with db:
        db.execute("INSERT INTO users (username, password_hash, role) "
                   "SELECT 'other', password_hash, 'user' FROM users WHERE username = ?", (ADMIN[0],))
    db.close()
    other = PasskeyClient(passkey_daemon)
    other.login("other", ADMIN[1])
    assert other.get("/api/v1/auth/passkeys").json()["passkeys"] == []
    refused(other.patch(f"/api/v1/auth/passkeys/{passkey['id']}", {"name": "mine now"}), 404, "not_found")
    refused(other.delete(f"/api/v1/auth/passkeys/{passkey['id']}"), 404, "not_found")
    assert [p["name"] for p in owner.get("/api/v1/auth/passkeys").json()["passkeys"] if p["id"] == passkey["id"]] == ["new name"]

    # Signed out, nothing is listed or registered.
    refused(anonymous(passkey_daemon).get("/api/v1/auth/passkeys"), 401, "unauthorized")
    refused(anonymous(passkey_daemon).post("/api/v1/auth/passkeys/register/options"), 401, "unauthorized")

    assert owner.delete(f"/api/v1/auth/passkeys/{passkey['id']}").status_code == 204
    assert passkey["id"] not in [p["id"] for p in owner.get("/api/v1/auth/passkeys").json()["passkeys"]]
    visitor = anonymous(passkey_daemon)
    challenge = visitor.login_options()["challenge"]
    refused(visitor.post("/api/v1/auth/passkeys/login", {
        "credential": assertion(key, challenge, visitor.origin, "localhost", None)}), 401, "unknown_passkey")


def test_eddsa_and_rs256_passkeys_work_too(passkey_daemon, owner):
    user_id = owner.get("/api/v1/auth/me").json()["user"]["id"]
    for alg, name in ((-8, "EdDSA"), (-257, "RS256")):
        key = SoftKey(alg)
        r = owner.register(key)
        assert r.status_code == 201 and r.json()["passkey"]["algorithm"] == name, r.text
        visitor = anonymous(passkey_daemon)
        challenge = visitor.login_options()["challenge"]
        r = visitor.post("/api/v1/auth/passkeys/login", {
            "credential": assertion(key, challenge, visitor.origin, "localhost", handle(user_id))})
        assert r.status_code == 200, r.text


# ---- refusals ----------------------------------------------------------------------------------

def test_a_replayed_assertion_is_refused(passkey_daemon, owner):
    key = registered_key(owner)
    visitor = anonymous(passkey_daemon)
    body = {"credential": assertion(key, visitor.login_options()["challenge"], visitor.origin, "localhost", None)}
    assert visitor.post("/api/v1/auth/passkeys/login", body).status_code == 200
    # The same bytes again, from a browser holding the same pre-login cookie: the challenge is spent.
    replay = anonymous(passkey_daemon)
    replay.http.cookies.update(visitor.http.cookies)
    refused(replay.post("/api/v1/auth/passkeys/login", body), 400, "challenge_unknown")


def test_a_wrong_origin_or_rp_id_hash_is_refused(passkey_daemon, owner):
    key = registered_key(owner)
    visitor = anonymous(passkey_daemon)
    refused(visitor.post("/api/v1/auth/passkeys/login", {"credential": assertion(
        key, visitor.login_options()["challenge"], "http://evil.localhost:1", "localhost", None)}), 400, "origin_mismatch")
    refused(visitor.post("/api/v1/auth/passkeys/login", {"credential": assertion(
        key, visitor.login_options()["challenge"], visitor.origin, "localhost", None,
        rp_id_hash=hashlib.sha256(b"evil.example").digest())}), 400, "rp_id_mismatch")
    # At registration as well.
    refused(owner.register(SoftKey(), rp_id_hash=hashlib.sha256(b"evil.example").digest()), 400, "rp_id_mismatch")


def test_a_challenge_of_another_session_or_ceremony_is_refused(passkey_daemon, owner):
    key = registered_key(owner)
    asker, thief = anonymous(passkey_daemon), anonymous(passkey_daemon)
    challenge = asker.login_options()["challenge"]
    thief.login_options()   # the thief has a pre-login cookie of its own
    credential = assertion(key, challenge, thief.origin, "localhost", None)
    refused(thief.post("/api/v1/auth/passkeys/login", {"credential": credential}), 403, "challenge_mismatch")
    # Left alone for its owner: the asker can still use it.
    assert asker.post("/api/v1/auth/passkeys/login", {"credential": credential}).status_code == 200

    # A registration challenge answered as a sign-in, and the other way round.
    reg_challenge = owner.post("/api/v1/auth/passkeys/register/options").json()["publicKey"]["challenge"]
    visitor = anonymous(passkey_daemon)
    visitor.login_options()
    refused(visitor.post("/api/v1/auth/passkeys/login", {
        "credential": assertion(key, reg_challenge, visitor.origin, "localhost", None)}), 403, "challenge_mismatch")
    login_challenge = anonymous(passkey_daemon).login_options()["challenge"]
    refused(owner.post("/api/v1/auth/passkeys/register", {"name": "x", "credential": registration(
        SoftKey(), login_challenge, owner.origin, "localhost")}), 403, "challenge_mismatch")
    # A sign-in answer typed as a registration's, with a sign-in challenge of the same browser.
    visitor2 = anonymous(passkey_daemon)
    refused(visitor2.post("/api/v1/auth/passkeys/login", {"credential": assertion(
        key, visitor2.login_options()["challenge"], visitor2.origin, "localhost", None, kind="webauthn.create")}),
        400, "wrong_ceremony")


def test_one_address_keeps_at_most_32_sign_ins_pending(passkey_daemon, owner):
    key = registered_key(owner)
    first = anonymous(passkey_daemon)
    first_challenge = first.login_options()["challenge"]
    for _ in range(32):   # each from a fresh browser (a fresh pre-login cookie), all from 127.0.0.1
        anonymous(passkey_daemon).login_options()
    refused(first.post("/api/v1/auth/passkeys/login", {"credential": assertion(
        key, first_challenge, first.origin, "localhost", None)}), 400, "challenge_unknown")
    latest = anonymous(passkey_daemon)
    challenge = latest.login_options()["challenge"]
    assert latest.post("/api/v1/auth/passkeys/login", {"credential": assertion(
        key, challenge, latest.origin, "localhost", None)}).status_code == 200


def test_missing_user_presence_is_refused(passkey_daemon, owner):
    key = registered_key(owner)
    visitor = anonymous(passkey_daemon)
    refused(visitor.post("/api/v1/auth/passkeys/login", {"credential": assertion(
        key, visitor.login_options()["challenge"], visitor.origin, "localhost", None, flags=UV)}), 400, "user_not_present")
    refused(owner.register(SoftKey(), flags=UV | AT), 400, "user_not_present")


def test_a_counter_that_does_not_increase_is_refused(passkey_daemon, owner):
    key = registered_key(owner, counter=5)
    visitor = anonymous(passkey_daemon)
    ok = assertion(key, visitor.login_options()["challenge"], visitor.origin, "localhost", None, counter=9)
    assert visitor.post("/api/v1/auth/passkeys/login", {"credential": ok}).status_code == 200
    for lower in (9, 3):
        refused(visitor.post("/api/v1/auth/passkeys/login", {"credential": assertion(
            key, visitor.login_options()["challenge"], visitor.origin, "localhost", None, counter=lower)}),
            401, "sign_count_not_increased")
    # An authenticator without a counter (always 0) is fine, every time.
    flat = registered_key(owner, counter=0)
    for _ in range(2):
        r = visitor.post("/api/v1/auth/passkeys/login", {"credential": assertion(
            flat, visitor.login_options()["challenge"], visitor.origin, "localhost", None, counter=0)})
        assert r.status_code == 200, r.text


def test_a_bad_signature_and_a_foreign_user_handle_are_refused(passkey_daemon, owner):
    key = registered_key(owner)
    visitor = anonymous(passkey_daemon)
    credential = assertion(key, visitor.login_options()["challenge"], visitor.origin, "localhost", None)
    signature = bytearray(unb64url(credential["response"]["signature"]))
    signature[-1] ^= 1
    credential["response"]["signature"] = b64url(bytes(signature))
    refused(visitor.post("/api/v1/auth/passkeys/login", {"credential": credential}), 401, "invalid_signature")
    refused(visitor.post("/api/v1/auth/passkeys/login", {"credential": assertion(
        key, visitor.login_options()["challenge"], visitor.origin, "localhost", handle(999))}), 401, "unknown_passkey")


def test_an_ip_address_cannot_be_an_rp_id(passkey_daemon, owner):
    plain = Client(passkey_daemon)   # Host: 127.0.0.1:PORT
    refused(plain.post("/api/v1/auth/passkeys/login/options"), 400, "needs_host_name")
    refused(plain.post("/api/v1/auth/passkeys/login", {"credential": {"id": "x", "type": "public-key",
                                                                       "response": {"clientDataJSON": "!"}}}),
            400, "invalid_credential")


def test_an_expired_challenge_is_refused():
    base = fresh_base()
    daemon = Daemon(base / "data", ["--unsafe-test-passkey-ttl", "1000"]).start()
    try:
        bootstrap_admin(daemon)
        owner = PasskeyClient(daemon)
        owner.login()
        key = registered_key(owner)
        visitor = anonymous(daemon)
        challenge = visitor.login_options()["challenge"]
        # The lifetime is a deadline on the daemon's clock; no event marks it, so waiting past it is the test.
        time.sleep(1.3)
        refused(visitor.post("/api/v1/auth/passkeys/login", {"credential": assertion(
            key, challenge, visitor.origin, "localhost", None)}), 400, "challenge_expired")
        options = owner.post("/api/v1/auth/passkeys/register/options").json()["publicKey"]
        time.sleep(1.3)
        refused(owner.post("/api/v1/auth/passkeys/register", {"name": "late", "credential": registration(
            SoftKey(), options["challenge"], owner.origin, "localhost")}), 400, "challenge_expired")
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


# ---- the RP ID and HTTPS -----------------------------------------------------------------------

def test_over_https_the_origin_is_https_and_the_cookie_secure():
    import requests
    import urllib3
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    base = fresh_base()
    daemon = Daemon(base / "data", ["--tls", "on"]).start()
    try:
        url = f"https://127.0.0.1:{daemon.port}"
        host = {"Host": f"localhost:{daemon.port}"}
        owner = requests.Session()
        owner.verify, owner.trust_env = False, False   # a self-signed certificate; no CA bundle from the environment
        owner.headers.update(host)
        owner.headers["Origin"] = f"https://localhost:{daemon.port}"   # as the page served from there
        assert owner.post(url + "/api/v1/setup", json={"code": daemon.setup_code(), "username": ADMIN[0],
                                                       "password": ADMIN[1]}).status_code == 200
        options = owner.post(url + "/api/v1/auth/passkeys/register/options").json()["publicKey"]
        key = SoftKey()
        origin = f"https://localhost:{daemon.port}"
        r = owner.post(url + "/api/v1/auth/passkeys/register", json={
            "name": "tls", "credential": registration(key, options["challenge"], origin, "localhost")})
        assert r.status_code == 201, r.text

        visitor = requests.Session()
        visitor.verify, visitor.trust_env = False, False
        visitor.headers.update(host)
        r = visitor.post(url + "/api/v1/auth/passkeys/login/options")
        cookie = r.headers["Set-Cookie"]
        assert "claworc_passkey_login=" in cookie and "Secure" in cookie and "HttpOnly" in cookie, cookie
        assert "SameSite=Strict" in cookie, cookie
        # The plain-HTTP origin of the same name is another origin.
        refused(visitor.post(url + "/api/v1/auth/passkeys/login", json={"credential": assertion(
            key, r.json()["publicKey"]["challenge"], f"http://localhost:{daemon.port}", "localhost", None)}),
            400, "origin_mismatch")
        challenge = visitor.post(url + "/api/v1/auth/passkeys/login/options").json()["publicKey"]["challenge"]
        r = visitor.post(url + "/api/v1/auth/passkeys/login", json={"credential": assertion(
            key, challenge, origin, "localhost", None)})
        assert r.status_code == 200, r.text
        assert "Secure" in r.headers["Set-Cookie"]
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_rp_id_option_binds_passkeys_to_that_name():
    base = fresh_base()
    daemon = Daemon(base / "data", ["--rp-id", "Claworc.Test"]).start()
    try:
        bootstrap_admin(daemon)
        owner = Client(daemon)
        owner.http.headers["Host"] = f"box.claworc.test:{daemon.port}"
        owner.login()
        owner.url = lambda path: (owner.http.headers.__setitem__("Origin", f"http://box.claworc.test:{daemon.port}"),
                                  daemon.base_url + path)[1]
        options = owner.post("/api/v1/auth/passkeys/register/options").json()["publicKey"]
        assert options["rp"]["id"] == "claworc.test"
        key = SoftKey()
        origin = f"http://box.claworc.test:{daemon.port}"
        assert owner.post("/api/v1/auth/passkeys/register", {"name": "n", "credential": registration(
            key, options["challenge"], origin, "claworc.test")}).status_code == 201
        visitor = Client(daemon)
        visitor.http.headers["Host"] = f"box.claworc.test:{daemon.port}"
        options = visitor.post("/api/v1/auth/passkeys/login/options").json()["publicKey"]
        assert options["rpId"] == "claworc.test"
        assert visitor.post("/api/v1/auth/passkeys/login", {"credential": assertion(
            key, options["challenge"], origin, "claworc.test", None)}).status_code == 200
        # A name outside the RP ID cannot start a ceremony.
        other = PasskeyClient(daemon)   # Host: localhost
        refused(other.post("/api/v1/auth/passkeys/login/options"), 400, "rp_id_mismatch")
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_rp_id_must_be_a_name():
    import subprocess
    from claworc_harness import BINARY
    out = subprocess.run([str(BINARY), "serve", "--rp-id", "192.168.1.10", "--data-dir", "/nonexistent"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 64, out
    assert "--rp-id" in out.stderr + out.stdout
