"""The LLM key proxy: inside every instance, 127.0.0.1:8399 is a socket the instance's init bound
and handed to the daemon, which accepts on it from the host. Requests come from inside the
instance (the exec API runs a Python client there); the fake provider listens on the host's
loopback, which the instance cannot reach (its network is "none"), only the daemon can.

The instance credential is computed here as the daemon derives it (HMAC-SHA-256 of the data
dir's secrets.key over "llm-proxy:<id>", SecretBox.derived): the agent helper's config writer
is what puts it into the instance; this file only needs its value.
"""
import hashlib
import hmac
import json
import pathlib
import sys
import threading

import pytest

from claworc_harness import Client, Daemon, bootstrap_admin

STANDINS = pathlib.Path(__file__).resolve().parents[1] / "standins"
sys.path.insert(0, str(STANDINS))

from fake_llm import FakeLLM, answer_for, pieces, prompt_of  # noqa: E402

KEY = "sk-real-" + "Zq9" * 12 + "LAST"

# Runs inside the instance: one request to the proxy; prints the status, headers, the body (as
# text) and how many reads it took. With "signal", after the first piece of a streamed answer
# arrived it makes a second request (a marker prompt) before reading on: the provider holds
# its last event until the test saw the marker.
CLIENT = r'''
import http.client, json, sys
a = json.loads(sys.argv[1])
def call(path, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", 8399, timeout=60)
    c.request("POST", path, body=body, headers=headers)
    return c, c.getresponse()
body = a["raw"].encode() if "raw" in a else json.dumps(a["body"]).encode()
c, r = call(a["path"], body, a["headers"])
pieces = []
if a.get("signal"):
    pieces.append(r.read1(65536))
    s = a["signal"]
    _, r2 = call(s["path"], json.dumps(s["body"]).encode(), a["headers"])
    r2.read()
while True:
    chunk = r.read1(65536)
    if not chunk:
        break
    pieces.append(chunk)
print(json.dumps({"status": r.status, "headers": {k.lower(): v for k, v in r.getheaders()},
                  "body": b"".join(pieces).decode(), "reads": len(pieces)}))
'''


def credential(daemon, iid):
    key = (daemon.data_dir / "secrets.key").read_bytes()
    return "cwp_" + hmac.new(key, f"llm-proxy:{iid}".encode(), hashlib.sha256).hexdigest()


def inside(admin, iid, path, body=None, headers=None, raw=None, signal=None):
    args = {"path": path, "headers": {"content-type": "application/json", **(headers or {})}}
    if raw is not None:
        args["raw"] = raw
    else:
        args["body"] = body
    if signal:
        args["signal"] = signal
    r = admin.post(f"/api/v1/instances/{iid}/exec", {"argv": ["python3", "-c", CLIENT, json.dumps(args)], "timeout_ms": 60000})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["exit_code"] == 0, result
    return json.loads(result["output"])


def bearer(cred):
    return {"authorization": f"Bearer {cred}"}


def anthropic_headers(cred):
    return {"x-api-key": cred, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def llm():
    fake = FakeLLM(api_key=KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def env(llm):
    """A daemon without instance services, the three kinds of provider pointing at the fake,
    and two running instances."""
    import shutil
    import tempfile
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-test-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data", ["--instance-services", "none"]).start()
    admin = bootstrap_admin(daemon)
    for name, api, url in [("oai", "openai-completions", llm.url + "/v1"), ("oresp", "openai-responses", llm.url + "/v1"),
                           ("anth", "anthropic-messages", llm.url)]:
        r = admin.http.put(admin.url(f"/api/v1/providers/{name}"),
                           json={"api": api, "base_url": url, "api_key": KEY, "models": ["fake-model"]}, timeout=30)
        assert r.status_code == 200, r.text
    ids = []
    for name in ("proxied-a", "proxied-b"):
        iid = admin.create(name)["id"]
        r = admin.post(f"/api/v1/instances/{iid}/start")
        assert r.status_code == 200, r.text
        ids.append(iid)
    yield daemon, admin, ids
    daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


def usage_of(admin, iid):
    r = admin.get(f"/api/v1/instances/{iid}/usage")
    assert r.status_code == 200, r.text
    return r.json()


def row(usage, model):
    rows = [u for u in usage["usage"] if u["model"] == model]
    assert len(rows) == 1, usage
    return rows[0]


def expected_tokens(path, body):
    prompt, words = prompt_of(path, body)
    return words, len(pieces(answer_for(prompt)))


def test_all_three_apis_streamed_and_not_reach_the_provider_with_the_real_key(env, llm):
    daemon, admin, (a, _) = env
    cred = credential(daemon, a)
    cases = [
        ("/providers/oai/chat/completions", "/v1/chat/completions", bearer(cred), "chat-model",
         lambda stream: {"model": "chat-model", "messages": [{"role": "user", "content": "count to three please"}],
                         **({"stream": True, "stream_options": {"include_usage": True}} if stream else {})}),
        ("/providers/oresp/responses", "/v1/responses", bearer(cred), "resp-model",
         lambda stream: {"model": "resp-model", "input": "say hello to the world", **({"stream": True} if stream else {})}),
        ("/providers/anth/v1/messages", "/v1/messages", anthropic_headers(cred), "claude-model",
         lambda stream: {"model": "claude-model", "max_tokens": 100, "messages": [{"role": "user", "content": "one two"}],
                         **({"stream": True} if stream else {})}),
        # Anthropic's SDK without /v1 in its base URL.
        ("/providers/anth/messages", "/v1/messages", anthropic_headers(cred), "claude-model",
         lambda stream: {"model": "claude-model", "max_tokens": 100, "messages": [{"role": "user", "content": "three"}],
                         **({"stream": True} if stream else {})}),
    ]
    expected = {}
    for path, upstream, headers, model, make in cases:
        for stream in (False, True):
            body = make(stream)
            seen = len(llm.requests)
            got = inside(admin, a, path, body, headers)
            assert got["status"] == 200, (path, got)
            text = answer_for(prompt_of(upstream, body)[0])
            if stream:
                assert got["headers"]["content-type"].startswith("text/event-stream"), got
                assert got["body"].encode() == bytes(llm.streams[-1]), "the stream must pass through unchanged"
                assert all(p.strip() in got["body"] for p in pieces(text))
            else:
                assert text in got["body"]
            (request,) = llm.requests[seen:]
            assert request["path"] == upstream
            sent = request["headers"]
            if "anth" in path:
                assert sent["x-api-key"] == KEY and "authorization" not in sent
            else:
                assert sent["authorization"] == f"Bearer {KEY}" and "x-api-key" not in sent
            assert cred not in json.dumps(sent), "the instance credential must not reach the provider"
            assert request["body"] == body
            inp, out = expected_tokens(upstream, body)
            e = expected.setdefault(model, [0, 0, 0])
            e[0] += 1
            e[1] += inp
            e[2] += out
    usage = usage_of(admin, a)
    for model, (requests, inp, out) in expected.items():
        r = row(usage, model)
        assert (r["requests"], r["input_tokens"], r["output_tokens"], r["errors"]) == (requests, inp, out, 0), (model, usage)
    assert usage["budget"]["monthly_tokens"] is None and usage["budget"]["spent_this_month"] == sum(
        i + o for _, i, o in expected.values())


def test_streamed_bytes_arrive_before_the_last_is_produced(env, llm):
    daemon, admin, (a, _) = env
    cred = credential(daemon, a)
    marker = threading.Event()
    original = llm.record

    def record(request):
        original(request)
        if "[first piece arrived]" in json.dumps(request["body"]):
            marker.set()
    llm.record = record
    llm.hold()
    held = len(llm.streams)
    result = []
    body = {"model": "held-model", "messages": [{"role": "user", "content": "stream slowly"}], "stream": True}
    signal = {"path": "/providers/oai/chat/completions",
              "body": {"model": "marker", "messages": [{"role": "user", "content": "[first piece arrived]"}]}}
    worker = threading.Thread(target=lambda: result.append(
        inside(admin, a, "/providers/oai/chat/completions", body, bearer(cred), signal=signal)))
    worker.start()
    try:
        # The client read its first piece and said so while the provider still holds its last
        # event: the proxy passed the stream on as it came.
        assert marker.wait(60), "the first streamed bytes never reached the client"
        assert b"[DONE]" not in bytes(llm.streams[held])
    finally:
        llm.release()
        llm.record = original
    worker.join(60)
    (got,) = result
    assert got["status"] == 200 and got["reads"] >= 2, got
    assert got["body"].encode() == bytes(llm.streams[held]), "the stream must arrive unchanged"
    assert got["body"].endswith("data: [DONE]\n\n")


def test_upstream_connections_are_kept_alive_and_reused(env, llm):
    daemon, admin, (a, _) = env
    seen = len(llm.requests)
    for _ in range(3):
        got = inside(admin, a, "/providers/oai/chat/completions",
                     {"model": "pooled", "messages": [{"role": "user", "content": "again"}]}, bearer(credential(daemon, a)))
        assert got["status"] == 200
    peers = {r["peer"] for r in llm.requests[seen:]}
    assert len(peers) < 3, f"each request opened its own upstream connection: {peers}"


def test_credentials_are_per_instance_and_wrong_paths_404(env, llm):
    daemon, admin, (a, b) = env
    seen = len(llm.requests)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({}, bearer("cwp_" + "0" * 64), bearer(KEY), bearer(credential(daemon, b))):
        got = inside(admin, a, "/providers/oai/chat/completions", body, headers)
        assert got["status"] == 401, (headers, got)
        assert json.loads(got["body"])["error"]["code"] == "invalid_api_key"
    got = inside(admin, b, "/providers/anth/v1/messages", body | {"max_tokens": 5}, anthropic_headers(credential(daemon, a)))
    assert got["status"] == 401 and json.loads(got["body"])["type"] == "error", got
    assert json.loads(got["body"])["error"]["type"] == "authentication_error"
    cred = credential(daemon, a)
    for path in ("/providers/oai/embeddings", "/v1/chat/completions", "/providers/oai", "/providers/../chat/completions"):
        got = inside(admin, a, path, body, bearer(cred))
        assert got["status"] == 404, (path, got)
        assert "error" in json.loads(got["body"])
    # A provider that does not exist, and an endpoint of the wrong kind of API.
    assert inside(admin, a, "/providers/nobody/chat/completions", body, bearer(cred))["status"] == 404
    assert inside(admin, a, "/providers/anth/chat/completions", body, bearer(cred))["status"] == 404
    assert len(llm.requests) == seen, "nothing refused may reach the provider"
    # Instance B's own credential works on B's listener.
    assert inside(admin, b, "/providers/oai/chat/completions", body, bearer(credential(daemon, b)))["status"] == 200


def test_budget_refuses_without_reaching_the_provider_until_raised(env, llm):
    daemon, admin, (_, b) = env
    cred = credential(daemon, b)
    body = {"model": "budget-model", "messages": [{"role": "user", "content": "spend some tokens"}]}
    settings = admin.url(f"/api/v1/instances/{b}/settings")
    r = admin.http.put(settings, json={"monthly_token_budget": 1}, timeout=30)
    assert r.status_code == 200 and r.json()["effective"]["monthly_token_budget"] == 1, r.text
    # B spent tokens in the test before; one more request only if not.
    if usage_of(admin, b)["budget"]["spent_this_month"] < 1:
        assert inside(admin, b, "/providers/oai/chat/completions", body, bearer(cred))["status"] == 200
    budget = usage_of(admin, b)["budget"]
    assert budget["exhausted"] and budget["monthly_tokens"] == 1 and not budget["inherited"], budget
    seen = len(llm.requests)
    counted = [u for u in usage_of(admin, b)["usage"] if u["model"] == "budget-model"]
    before = counted[0] if counted else {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0}
    got = inside(admin, b, "/providers/oai/chat/completions", body, bearer(cred))
    assert got["status"] == 429, got
    message = json.loads(got["body"])["error"]["message"]
    assert message == "Claworc: monthly token budget of 1 tokens for this instance is spent; an admin can raise it.", message
    got = inside(admin, b, "/providers/anth/v1/messages", body | {"max_tokens": 5}, anthropic_headers(cred))
    assert got["status"] == 429 and json.loads(got["body"])["error"]["type"] == "rate_limit_error", got
    assert len(llm.requests) == seen, "a refused request must not reach the provider"
    # Each refusal is counted (stored before the 429 is sent): a request, an error, no tokens.
    after = row(usage_of(admin, b), "budget-model")
    assert (after["requests"], after["errors"]) == (before["requests"] + 2, before["errors"] + 2), (before, after)
    assert (after["input_tokens"], after["output_tokens"]) == (before["input_tokens"], before["output_tokens"]), (before, after)
    # The global default applies where the instance sets none; raising it lets requests through.
    r = admin.http.put(settings, json={}, timeout=30)
    assert r.status_code == 200
    r = admin.http.put(admin.url("/api/v1/settings/instance-defaults"), json={"monthly_token_budget": 1}, timeout=30)
    assert r.status_code == 200, r.text
    assert usage_of(admin, b)["budget"]["inherited"] is True
    assert inside(admin, b, "/providers/oai/chat/completions", body, bearer(cred))["status"] == 429
    r = admin.http.put(admin.url("/api/v1/settings/instance-defaults"), json={"monthly_token_budget": 10_000_000}, timeout=30)
    assert r.status_code == 200
    assert inside(admin, b, "/providers/oai/chat/completions", body, bearer(cred))["status"] == 200
    assert len(llm.requests) == seen + 1
    admin.http.put(admin.url("/api/v1/settings/instance-defaults"), json={}, timeout=30)
    for bad in (-1, "lots", 1.5):
        r = admin.http.put(settings, json={"monthly_token_budget": bad}, timeout=30)
        assert r.status_code == 400, (bad, r.text)


def test_the_real_key_is_nowhere_inside_nor_in_log_or_database(env):
    daemon, admin, (a, b) = env
    for iid in (a, b):
        for user in ("agent", "root"):
            script = ("cat /proc/1/environ /proc/self/environ 2>/dev/null; env; "
                      "grep -rl --exclude-dir=proc --exclude-dir=sys -s -- \"$0\" /home /root /tmp /run /etc /opt /var 2>/dev/null; true")
            r = admin.post(f"/api/v1/instances/{iid}/exec", {"argv": ["sh", "-c", script, KEY], "user": user})
            assert r.status_code == 200, r.text
            assert KEY not in r.json()["output"].replace(f"sh -c {KEY}", ""), (iid, user)
            assert "sk-real-" not in r.json()["output"]
    for f in daemon.data_dir.glob("claworc.db*"):
        assert KEY.encode() not in f.read_bytes(), f.name
    log = daemon.log_text()
    assert KEY not in log and credential(daemon, a) not in log and credential(daemon, b) not in log


def test_usage_api_access(env):
    daemon, admin, (a, _) = env
    assert admin.post("/api/v1/users", {"username": "usage-user", "password": "a-good-password", "role": "user"}).status_code == 201
    user = Client(daemon)
    user.login("usage-user", "a-good-password")
    assert user.get(f"/api/v1/instances/{a}/usage").status_code == 404
    assert user.get("/api/v1/usage").status_code == 403
    users = admin.get("/api/v1/users").json()["users"]
    uid = next(u["id"] for u in users if u["username"] == "usage-user")
    r = admin.http.put(admin.url(f"/api/v1/instances/{a}/users/{uid}"), timeout=30)
    assert r.status_code == 204, r.text
    mine = user.get(f"/api/v1/instances/{a}/usage")
    assert mine.status_code == 200 and mine.json()["usage"], mine.text
    everything = admin.get("/api/v1/usage?days=7")
    assert everything.status_code == 200
    names = {u["instance_name"] for u in everything.json()["usage"]}
    assert "proxied-a" in names and "proxied-b" in names, everything.json()
    assert admin.get("/api/v1/usage?days=0").status_code == 400


def test_proxy_survives_a_daemon_restart(env, llm):
    daemon, admin, (a, _) = env
    daemon.kill()
    daemon.start()
    admin.http.cookies.clear()
    fresh = Client(daemon)
    fresh.http = daemon.admin_session()
    got = inside(fresh, a, "/providers/oai/chat/completions",
                 {"model": "after-restart", "messages": [{"role": "user", "content": "still there?"}]}, bearer(credential(daemon, a)))
    assert got["status"] == 200, got
    env[1].http = fresh.http


HOARD = r'''
import json, socket, sys
held, refused = [], 0
for _ in range(300):
    s = socket.create_connection(("127.0.0.1", 8399))
    held.append(s)
# A refused connection is accepted and closed at once: a request on it reads end of stream.
for s in held:
    s.settimeout(10)
    try:
        s.sendall(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        answer = s.recv(1)
    except OSError:
        answer = b""
    refused += answer == b""
print(json.dumps({"refused": refused}))
'''


def test_connections_per_instance_are_capped(env):
    daemon, admin, (a, _) = env
    r = admin.post(f"/api/v1/instances/{a}/exec", {"argv": ["python3", "-c", HOARD], "timeout_ms": 60000})
    assert r.status_code == 200 and r.json()["exit_code"] == 0, r.text
    assert json.loads(r.json()["output"])["refused"] == 300 - 256
    # Once they are closed, the instance is served again.
    got = inside(admin, a, "/providers/oai/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                 bearer(credential(daemon, a)))
    assert got["status"] == 200, got
