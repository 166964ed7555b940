"""The test stand-ins themselves: the OpenClaw gateway stand-in (run as a process with Debian's
python3 and no site-packages, as inside an instance) against a protocol client, and the fake LLM
provider it calls. No daemon is involved; everything is on loopback."""
import json
import pathlib
import signal
import sys
import time
import urllib.request

import pytest

STANDINS = pathlib.Path(__file__).resolve().parents[1] / "standins"
sys.path.insert(0, str(STANDINS))

import schema  # noqa: E402
from fake_llm import FakeLLM, answer_for  # noqa: E402
from gateway_client import Client, Device, GatewayProcess, config  # noqa: E402

APIS = ["openai-completions", "openai-responses", "anthropic-messages"]


@pytest.fixture
def llm():
    fake = FakeLLM(api_key="sk-right").start()
    yield fake
    fake.stop()


@pytest.fixture
def start(tmp_path, llm):
    started = []

    def run(cfg=None, api="openai-completions", key="sk-right", **settings):
        base = llm.url + ("" if api == "anthropic-messages" else "/v1")
        gw = GatewayProcess(tmp_path / f"home{len(started)}", cfg or config(provider=(api, base, key)), settings)
        started.append(gw)
        return gw.wait_listening()
    yield run
    Client.close_all()
    for gw in started:
        gw.stop()


@pytest.fixture(scope="module")
def device():
    return Device()


def http_status(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def refused(client):
    """(error, close code) of a connect that failed."""
    assert client.hello["ok"] is False, client.hello
    return client.hello["error"], client.wait_close()


def validator():
    root = schema.load()
    return lambda value, name: schema.Validator(root).check(value, root["definitions"][name])


@pytest.mark.parametrize("protocol", [3, 4])
def test_handshake_in_both_protocol_modes(start, device, protocol):
    gw = start(PROTOCOL=protocol)
    assert http_status(gw.url("/healthz")) == (200, b'{"ok": true, "status": "live"}')
    assert http_status(gw.url("/healthz"), "HEAD")[0] == 200
    assert http_status(gw.url("/readyz"))[0] == 200
    c = Client(gw.port, device=device)
    assert c.challenge["event"] == "connect.challenge" and c.challenge["seq"] == 0
    assert isinstance(c.challenge["payload"]["ts"], int) and len(c.challenge["payload"]["nonce"]) >= 16
    assert c.hello["ok"] is True
    hello = c.hello["payload"]
    if protocol == 3:
        validator()(hello, "HelloOk")  # the v3 shapes are exactly OpenClaw's schema
    assert hello["protocol"] == protocol
    assert hello["auth"]["scopes"] == ["operator.read", "operator.write", "operator.admin", "operator.approvals"]
    assert hello["auth"]["deviceToken"]
    assert hello["snapshot"]["sessionDefaults"]["mainSessionKey"] == "agent:main:main"
    assert {"chat.send", "chat.history", "chat.abort", "sessions.reset"} <= set(hello["features"]["methods"])
    assert c.request("health")["payload"]["ok"] is True
    # The range must contain the gateway's protocol: a v3-only client cannot talk to a v4 gateway.
    other = Client(gw.port, device=device, protocol=(protocol + 1, protocol + 1) if protocol == 3 else (3, 3))
    error, code = refused(other)
    assert error["details"]["code"] == "PROTOCOL_MISMATCH" and code == 1002
    # Client ids added with protocol 4 are unknown to a v3 gateway's closed enum.
    linux = Client(gw.port, device=device, client={"id": "openclaw-linux", "version": "1", "platform": "linux", "mode": "cli"})
    assert linux.hello["ok"] is (protocol == 4), linux.hello


def test_unknown_fields_and_bad_frames_are_rejected(start, device):
    gw = start()
    error, code = refused(Client(gw.port, device=device, extra={"agentId": "main"}))
    assert error["code"] == "INVALID_REQUEST" and "unexpected property 'agentId'" in error["message"] and code == 1008
    error, code = refused(Client(gw.port, device=device, tamper=lambda p: p["client"].update(nickname="x")))
    assert "root.client: unexpected property 'nickname'" in error["message"] and code == 1008
    error, code = refused(Client(gw.port, device=device, tamper=lambda p: p["client"].update(platform="")))
    assert "platform" in error["message"] and code == 1008
    c = Client(gw.port, device=device)
    bad = c.request("chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "k1", "agentId": "main"})
    assert bad["ok"] is False and bad["error"]["code"] == "INVALID_REQUEST"
    assert bad["error"]["message"].startswith("invalid chat.send params:")
    assert c.request("sessions.reset", {"key": "main", "why": "x"})["error"]["code"] == "INVALID_REQUEST"
    unknown = c.request("no.such.method", {})
    assert unknown["error"] == {"code": "INVALID_REQUEST", "message": "unknown method: no.such.method"}
    # The first request must be connect: anything else closes with 1008.
    import websocket
    raw = websocket.create_connection(f"ws://127.0.0.1:{gw.port}/", timeout=10)
    raw.recv()
    raw.send(json.dumps({"type": "req", "id": "1", "method": "health"}))
    assert json.loads(raw.recv())["error"]["code"] == "INVALID_REQUEST"
    opcode, data = raw.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1008


def test_token_auth(start, device):
    gw = start()
    error, code = refused(Client(gw.port, token="wrong", device=device))
    assert error["details"]["code"] == "AUTH_TOKEN_MISMATCH" and code == 1008
    error, code = refused(Client(gw.port, token=None, device=device))
    assert error["details"]["code"] == "AUTH_TOKEN_MISSING" and code == 1008


def test_device_identity_is_verified(start, device):
    gw = start()
    assert Client(gw.port, device=device, sign="v2").hello["ok"] is True, "the v2 signing string is still accepted"

    def forge(p):
        p["device"]["signature"] = p["device"]["signature"][:-4] + ("AAAA" if not p["device"]["signature"].endswith("AAAA") else "BBBB")
    error, code = refused(Client(gw.port, device=device, tamper=forge))
    assert error["details"]["code"] == "DEVICE_AUTH_SIGNATURE_INVALID" and code == 1008
    # Scopes are signed: asking for more than was signed breaks the signature.
    error, _ = refused(Client(gw.port, device=device, tamper=lambda p: p["scopes"].append("operator.pairing")))
    assert error["details"]["code"] == "DEVICE_AUTH_SIGNATURE_INVALID"
    error, _ = refused(Client(gw.port, device=device, tamper=lambda p: p["device"].update(nonce="not-the-challenge")))
    assert error["details"]["code"] == "DEVICE_AUTH_NONCE_MISMATCH"
    error, _ = refused(Client(gw.port, device=device, tamper=lambda p: p["device"].update(id="0" * 64)))
    assert error["details"]["code"] == "DEVICE_AUTH_DEVICE_ID_MISMATCH"
    # Silent pairing only for direct loopback: a relay adding forwarding headers needs approval.
    fresh = Device()
    error, code = refused(Client(gw.port, device=fresh, headers=["X-Forwarded-For: 10.0.0.7"]))
    assert error["code"] == "NOT_PAIRED" and error["details"]["code"] == "PAIRING_REQUIRED" and code == 1008
    assert "ed25519" not in gw.stderr


def test_without_a_device_identity_scopes_are_cleared(start):
    gw = start()
    c = Client(gw.port, device=None)
    assert c.hello["ok"] is True and c.hello["payload"]["auth"]["scopes"] == []
    sent = c.request("chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "k"})
    assert sent["error"] == {"code": "FORBIDDEN", "message": "missing scope: operator.write",
                             "details": {"code": "MISSING_SCOPE", "missingScope": "operator.write"}}
    assert c.request("chat.history", {"sessionKey": "main"})["error"]["details"]["missingScope"] == "operator.read"
    assert c.request("health")["ok"] is True


@pytest.mark.parametrize("api,protocol", [(api, 4) for api in APIS] + [("openai-completions", 3)])
def test_chat_streams_the_provider_answer(start, llm, device, api, protocol):
    gw = start(api=api, PROTOCOL=protocol)
    c = Client(gw.port, device=device)
    ack = c.request("chat.send", {"sessionKey": "main", "message": "What is two plus two?", "idempotencyKey": "run-1"})
    assert ack["payload"] == {"runId": "run-1", "status": "started"}
    events = c.run_events("run-1")
    expected = answer_for("What is two plus two?")
    agent = [e["payload"] for e in events if e["event"] == "agent"]
    chat = [e["payload"] for e in events if e["event"] == "chat"]
    assert agent[0]["data"]["phase"] == "start" and agent[-1]["data"]["phase"] == "end"
    assert all(a["sessionKey"] == "agent:main:main" for a in agent), "agent events carry the canonical key"
    assert all(p["sessionKey"] == "main" for p in chat), "chat events carry the key as sent"
    texts = [a["data"]["text"] for a in agent if a["stream"] == "assistant"]
    assert len(texts) > 3 and texts[-1] == expected and all(expected.startswith(t) for t in texts), "cumulative"
    deltas = [p for p in chat if p["state"] == "delta"]
    snapshots = [p["message"]["content"][0]["text"] for p in deltas]
    assert snapshots[0] == snapshots[1], "an identical snapshot is resent once"
    assert snapshots[-1] == expected
    if protocol == 4:
        assert "".join(p["deltaText"] for p in deltas) == expected
    else:
        assert not any("deltaText" in p for p in deltas)
    final = chat[-1]
    assert final["state"] == "final" and final["message"]["content"] == [{"type": "text", "text": expected}]
    words = len(expected.split())
    assert final["usage"]["output"] == words and final["usage"]["input"] >= 5
    assert [e["seq"] for e in c.seen] == sorted(e["seq"] for e in c.seen), "per-connection seq is ordered"
    request = llm.requests[-1]
    assert request["body"]["model"] == "fake-model" and request["body"]["stream"] is True
    auth = request["headers"].get("x-api-key") if api == "anthropic-messages" else request["headers"]["authorization"]
    assert auth in ("sk-right", "Bearer sk-right")
    history = c.request("chat.history", {"sessionKey": "agent:main:main"})["payload"]
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][1]["content"][0]["text"] == expected
    assert c.request("chat.history", {"sessionKey": "main"})["payload"]["messages"] == history["messages"]
    again = c.request("chat.send", {"sessionKey": "main", "message": "x", "idempotencyKey": "run-1"})
    assert again["payload"] == {"runId": "run-1", "status": "ok"}, "a finished run is not started twice"


def test_provider_failure_is_a_run_error(start, device):
    gw = start(key="sk-wrong")
    c = Client(gw.port, device=device)
    c.request("chat.send", {"sessionKey": "main", "message": "hello", "idempotencyKey": "r"})
    events = c.run_events("r")
    final = [e["payload"] for e in events if e["event"] == "chat"][-1]
    assert final["state"] == "error" and "HTTP 401" in final["errorMessage"] and final["errorKind"] == "unknown"
    assert events[-1]["payload"]["data"]["phase"] == "error"
    ok = Client(start().port, device=device)
    ok.request("chat.send", {"sessionKey": "main", "message": "please [429]", "idempotencyKey": "r2"})
    final = [e for e in ok.run_events("r2") if e["event"] == "chat"][-1]["payload"]
    assert final["state"] == "error" and final["errorKind"] == "rate_limit" and "HTTP 429" in final["errorMessage"]
    assert [m["role"] for m in ok.request("chat.history", {"sessionKey": "main"})["payload"]["messages"]] == ["user"]


def test_abort_in_flight_and_reset(start, llm, device):
    gw = start()
    c = Client(gw.port, device=device)
    llm.hold()  # the provider pauses after its first piece of text until released
    c.request("chat.send", {"sessionKey": "s1", "message": "tell me a long story", "idempotencyKey": "a1"})
    c.event(lambda f: f["event"] == "chat" and f["payload"]["state"] == "delta")
    dup = c.request("chat.send", {"sessionKey": "s1", "message": "tell me a long story", "idempotencyKey": "a1"})
    assert dup["payload"] == {"runId": "a1", "status": "in_flight"}
    aborted = c.request("chat.abort", {"sessionKey": "agent:main:s1", "runId": "a1"})["payload"]
    assert aborted == {"ok": True, "aborted": True, "runIds": ["a1"]}
    c.event(lambda f: f["event"] == "chat" and f["payload"]["state"] == "aborted")
    c.event(lambda f: f["event"] == "agent" and f["payload"]["stream"] == "lifecycle" and f["payload"]["data"]["phase"] == "end")
    llm.release()
    # The partial answer lands in the transcript once the provider stream has ended.
    deadline = time.monotonic() + 10
    while len(messages := c.request("chat.history", {"sessionKey": "s1"})["payload"]["messages"]) < 2:
        assert time.monotonic() < deadline, messages
        time.sleep(0.02)  # polling a state the protocol announces nowhere
    assert messages[1]["stopReason"] == "aborted"
    assert not any(e["event"] == "chat" and e["payload"]["state"] == "final" for e in c.seen)
    assert c.request("chat.abort", {"sessionKey": "s1"})["payload"] == {"ok": True, "aborted": False, "runIds": []}
    before = c.request("chat.history", {"sessionKey": "s1"})["payload"]["sessionId"]
    reset = c.request("sessions.reset", {"key": "s1"})["payload"]
    assert reset["ok"] is True and reset["key"] == "agent:main:s1"
    after = c.request("chat.history", {"sessionKey": "s1"})["payload"]
    assert after["messages"] == [] and after["sessionId"] != before


def test_tool_events_only_for_the_sender_with_the_cap_and_runs_broadcast(start, device):
    gw = start()
    a = Client(gw.port, device=device, caps=["tool-events"])
    b = Client(gw.port, device=device, caps=[])
    a.request("chat.send", {"sessionKey": "main", "message": "Please use a tool now", "idempotencyKey": "t1"})
    tools = [e["payload"]["data"] for e in a.run_events("t1") if e["payload"].get("stream") == "tool"]
    assert [(t["phase"], t["name"]) for t in tools] == [("start", "exec"), ("result", "exec")]
    seen_by_b = b.run_events("t1")
    assert seen_by_b[-1]["payload"]["data"]["phase"] == "end", "events are broadcast to every socket"
    assert not any(e["payload"].get("stream") == "tool" for e in seen_by_b), "no tool events without the cap"
    b.request("chat.send", {"sessionKey": "main", "message": "use a tool again", "idempotencyKey": "t2"})
    assert not any(e["payload"].get("stream") == "tool" for e in b.run_events("t2"))
    assert not any(e["payload"].get("stream") == "tool" for e in a.run_events("t2")), "only the sender's socket"
    roles = [m["role"] for m in a.request("chat.history", {"sessionKey": "main"})["payload"]["messages"]]
    assert roles == ["user", "toolResult", "assistant", "user", "toolResult", "assistant"]


def test_ticks_and_the_no_tick_mode(start, device):
    gw = start(TICK_MS=100)
    c = Client(gw.port, device=device)
    assert c.hello["payload"]["policy"]["tickIntervalMs"] == 100
    first = c.event(lambda f: f["event"] == "tick")["payload"]["ts"]
    assert c.event(lambda f: f["event"] == "tick")["payload"]["ts"] > first
    quiet = start(TICK_MS=100, TICKS=0)
    q = Client(quiet.port, device=device)
    with pytest.raises(AssertionError, match="no matching event"):
        q.event(lambda f: f["event"] == "tick", timeout=0.6)  # silence for 6 tick intervals is the point


def test_shutdown_closes_1012_and_sidecars_close_1013(start, device):
    gw = start()
    c = Client(gw.port, device=device)
    gw.proc.send_signal(signal.SIGUSR1)  # in-process restart
    shutdown = c.event(lambda f: f["event"] == "shutdown")["payload"]
    assert shutdown == {"reason": "gateway restarting", "restartExpectedMs": 1500}
    assert c.wait_close() == 1012
    d = Client(gw.port, device=device)
    gw.proc.send_signal(signal.SIGTERM)
    assert d.event(lambda f: f["event"] == "shutdown")["payload"] == {"reason": "gateway stopping"}
    assert d.wait_close() == 1012
    assert gw.finish() == 0
    starting = start(SIDECARS_MS=60000)
    assert http_status(starting.url("/healthz"))[0] == 200 and http_status(starting.url("/readyz"))[0] == 503
    error, code = refused(Client(starting.port, device=device))
    assert code == 1013 and error["code"] == "UNAVAILABLE" and error["retryable"] is True
    assert error["details"] == {"reason": "startup-sidecars"} and 0 < error["retryAfterMs"] <= 60000


@pytest.mark.parametrize("cfg,why", [
    ({"gateway": {"mode": "local"}, "surprise": {}}, "unexpected property 'surprise'"),
    ({"gateway": {"mode": "local", "port": "18789"}}, "config.gateway.port: must be integer"),
    ({"gateway": {"port": 18789}}, "gateway.mode=local"),
    ({"gateway": {"mode": "local"}, "models": {"providers": {"p": {"baseUrl": "http://x", "apiKye": "k"}}}}, "'apiKye'"),
    ('{"gateway": {"mode": "local",}}', "Invalid config"),
])
def test_a_bad_config_exits_78(tmp_path, cfg, why):
    gw = GatewayProcess(tmp_path, cfg)
    assert gw.finish() == 78
    assert why in gw.stderr, gw.stderr


def test_noise_mode_sends_what_a_dashboard_must_ignore(start, device):
    gw = start(NOISE=1)
    c = Client(gw.port, device=device)
    c.request("chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "n1"})
    assert c.run_events("n1")[-1]["payload"]["data"]["phase"] == "end"
    others = [e for e in c.seen if e["event"] in ("agent", "chat") and e["payload"]["runId"] != "n1"]
    assert {e["payload"]["sessionKey"] for e in others} == {"agent:main:elsewhere"}
    assert any(e["event"] == "agent" and e["payload"]["stream"] == "standin-unknown" for e in others)
    assert any(e["event"] == "standin.unknown-event" for e in c.seen)


def test_websocket_framing(start, device):
    import websocket
    from websocket import ABNF
    gw = start()
    raw = websocket.create_connection(f"ws://127.0.0.1:{gw.port}/", timeout=10)
    raw.recv()
    raw.send("x" * (70 * 1024))  # before connect, frames are capped at 64 KiB
    opcode, data = raw.recv_data(control_frame=True)
    assert opcode == ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1009
    raw.close()
    c = Client(gw.port, device=device)
    c.ws.ping("are you there")
    assert c.ws.recv_data(control_frame=True) == (ABNF.OPCODE_PONG, b"are you there")
    # One request in three fragments, with a ping between them.
    text = json.dumps({"type": "req", "id": "frag", "method": "health"})
    c.ws.send_frame(ABNF.create_frame(text[:10], ABNF.OPCODE_TEXT, fin=0))
    c.ws.send_frame(ABNF.create_frame(text[10:20], ABNF.OPCODE_CONT, fin=0))
    c.ws.ping("mid")
    c.ws.send_frame(ABNF.create_frame(text[20:], ABNF.OPCODE_CONT, fin=1))
    assert c.ws.recv_data(control_frame=True) == (ABNF.OPCODE_PONG, b"mid")
    res = c.next_frame()
    assert res["id"] == "frag" and res["ok"] is True
    # Messages over 64 KiB (64-bit lengths) both ways once connected.
    big = "y" * 100_000
    c.request("chat.send", {"sessionKey": "big", "message": big, "idempotencyKey": "b1"})
    final = c.run_events("b1")[-2]["payload"]
    assert final["state"] == "final" and final["message"]["content"][0]["text"] == answer_for(big)
    assert c.request("chat.history", {"sessionKey": "big"})["payload"]["messages"][0]["content"] == big
    # Client frames must be masked.
    d = Client(gw.port, device=device)
    d.ws.sock.sendall(b"\x81\x02hi")
    assert d.wait_close() == 1002


def test_pairing_required_mode(start, device):
    gw = start(PAIRING="required")
    error, code = refused(Client(gw.port, device=device))
    assert error["code"] == "NOT_PAIRED" and error["details"]["reason"] == "not-paired" and code == 1008
    assert error["details"]["requestId"] in error["details"]["recommendedNextStep"]
    assert Client(gw.port, device=None).hello["payload"]["auth"]["scopes"] == [], "shared auth alone still connects"
