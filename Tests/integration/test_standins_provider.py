"""The fake LLM provider on its own, the stand-in's pure-Python Ed25519 and schema copy, and the
OpenClaw stand-in bundle (its layout, running its bin/openclaw, and installing it through the
daemon's real bundle API)."""
import http.client
import json
import os
import pathlib
import stat
import subprocess
import sys
import tarfile
import urllib.request

import pytest

STANDINS = pathlib.Path(__file__).resolve().parents[1] / "standins"
sys.path.insert(0, str(STANDINS))

import ed25519  # noqa: E402
from bundle import make_bundle  # noqa: E402
from fake_llm import FakeLLM, answer_for, pieces  # noqa: E402
from gateway_client import PYTHON, Client, Device, GatewayProcess, config  # noqa: E402

SHARED_SCHEMA = pathlib.Path("/work/shared/openclaw/protocol.schema.json")


@pytest.fixture
def llm():
    fake = FakeLLM(api_key="sk-right").start()
    yield fake
    fake.stop()


def post(llm, path, body, headers):
    req = urllib.request.Request(llm.url + path, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


OPENAI_BODY = {"model": "fake-model", "messages": [{"role": "system", "content": "be brief"},
                                                   {"role": "user", "content": "Hello there"}]}
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def test_the_api_key_is_checked_in_each_apis_error_shape(llm):
    code, body = post(llm, "/v1/chat/completions", OPENAI_BODY, {"Authorization": "Bearer sk-wrong"})
    assert code == 401 and body["error"]["code"] == "invalid_api_key"
    code, body = post(llm, "/v1/responses", {"model": "m", "input": "hi"}, {})
    assert code == 401 and body["error"]["type"] == "invalid_request_error"
    code, body = post(llm, "/v1/messages", OPENAI_BODY, {"x-api-key": "sk-wrong", **ANTHROPIC})
    assert code == 401 and body == {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    code, body = post(llm, "/v1/messages", OPENAI_BODY, {"x-api-key": "sk-right"})
    assert code == 400 and "anthropic-version" in body["error"]["message"]
    assert [(r["path"], r["headers"].get("authorization"), r["headers"].get("x-api-key")) for r in llm.requests] == [
        ("/v1/chat/completions", "Bearer sk-wrong", None), ("/v1/responses", None, None),
        ("/v1/messages", None, "sk-wrong"), ("/v1/messages", None, "sk-right")]
    assert llm.requests[0]["body"] == OPENAI_BODY


def test_non_streamed_answers_and_usage(llm):
    expected = answer_for("Hello there")
    n = len(pieces(expected))
    code, body = post(llm, "/v1/chat/completions", OPENAI_BODY, {"Authorization": "Bearer sk-right"})
    assert code == 200 and body["choices"][0]["message"] == {"role": "assistant", "content": expected}
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": 4 + n}
    code, body = post(llm, "/v1/responses", {"model": "m", "input": "Hello there"}, {"Authorization": "Bearer sk-right"})
    assert body["status"] == "completed" and body["output"][0]["content"][0]["text"] == expected
    assert body["usage"] == {"input_tokens": 2, "output_tokens": n, "total_tokens": 2 + n}
    code, body = post(llm, "/v1/messages", {"model": "claude", "max_tokens": 10, "system": "be brief",
                                            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]},
                      {"x-api-key": "sk-right", **ANTHROPIC})
    assert body["content"] == [{"type": "text", "text": expected}] and body["stop_reason"] == "end_turn"
    assert body["usage"] == {"input_tokens": 4, "output_tokens": n}


def sse_events(response):
    """(event, data) pairs as they arrive."""
    event = None
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, line[6:]
            event = None


def open_stream(llm, path, body, headers):
    conn = http.client.HTTPConnection("127.0.0.1", int(llm.url.rsplit(":", 1)[1]), timeout=10)
    conn.request("POST", path, json.dumps({**body, "stream": True}), {"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    assert response.getheader("Transfer-Encoding") == "chunked"
    return conn, response


def test_openai_stream_arrives_in_pieces_with_final_usage(llm):
    llm.hold()  # the stream pauses after its first piece of text: what came before must be readable
    conn, response = open_stream(llm, "/v1/chat/completions", {**OPENAI_BODY, "stream_options": {"include_usage": True}},
                                 {"Authorization": "Bearer sk-right"})
    events = sse_events(response)
    chunks = []
    for _, data in events:
        chunks.append(json.loads(data))
        if chunks[-1]["choices"] and chunks[-1]["choices"][0]["delta"].get("content"):
            break
    first = pieces(answer_for("Hello there"))[0]
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", first], chunks
    llm.release()
    for _, data in events:
        if data == "[DONE]":
            break
        chunks.append(json.loads(data))
    else:
        raise AssertionError("the stream ended without [DONE]")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == answer_for("Hello there") and len(chunks) > 4
    assert all(c["usage"] is None for c in chunks[:-1]) and chunks[-1]["usage"]["completion_tokens"] == len(pieces(text))
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert list(events) == [], "nothing follows [DONE]"
    conn.close()


@pytest.mark.parametrize("api", ["responses", "anthropic"])
def test_responses_and_anthropic_streams(llm, api):
    expected = answer_for("Hello there")
    if api == "responses":
        conn, response = open_stream(llm, "/v1/responses", {"model": "m", "input": "Hello there"}, {"Authorization": "Bearer sk-right"})
    else:
        conn, response = open_stream(llm, "/v1/messages", {**OPENAI_BODY, "max_tokens": 50}, {"x-api-key": "sk-right", **ANTHROPIC})
    events = [(e, json.loads(d)) for e, d in sse_events(response)]
    assert all(e == d["type"] for e, d in events), "event: names match the payload types"
    kinds = [e for e, _ in events]
    if api == "responses":
        assert kinds[0] == "response.created" and kinds[-2:] == ["response.output_text.done", "response.completed"]
        assert "".join(d["delta"] for e, d in events if e == "response.output_text.delta") == expected
        assert events[-1][1]["response"]["usage"]["output_tokens"] == len(pieces(expected))
    else:
        assert kinds[:3] == ["message_start", "content_block_start", "ping"]
        assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
        assert "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta") == expected
        assert events[0][1]["message"]["usage"]["input_tokens"] == 4
        assert events[-2][1]["usage"] == {"output_tokens": len(pieces(expected))}
    conn.close()


def test_pure_python_ed25519_agrees_with_cryptography():
    for i in range(12):
        device = Device()
        message = f"v3|{device.id}|message {i}".encode()
        signature = device.key.sign(message)
        assert ed25519.verify_pure(device.public, message, signature)
        assert not ed25519.verify_pure(device.public, message + b"!", signature)
        assert not ed25519.verify_pure(device.public, message, signature[:63] + bytes([signature[63] ^ 0x40]))
        assert not ed25519.verify_pure(Device().public, message, signature)
    # Inside an instance (no site-packages) the stand-in falls back to the pure verifier.
    probe = subprocess.run([*PYTHON, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import ed25519; print(ed25519.backend())",
                            str(STANDINS)], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "pure-python"


def test_the_schema_copy_is_openclaws():
    if not SHARED_SCHEMA.exists():
        pytest.fail(f"{SHARED_SCHEMA} is missing: cannot check the stand-in's schema copy against OpenClaw's")
    ours = json.loads((STANDINS / "protocol.schema.json").read_text())["definitions"]
    theirs = json.loads(SHARED_SCHEMA.read_text())["definitions"]
    assert {name: theirs[name] for name in ours} == ours


def test_the_bundle_layout_runs_and_installs(tmp_path, admin):
    path = make_bundle(tmp_path / "openclaw.tar.gz", version="2026.11.30-standin", mode="v3")
    with tarfile.open(path) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        assert all(not n.startswith("/") and ".." not in n.split("/") for n in members)
        link = members["bin/openclaw"]
        assert link.issym() and link.linkname == "../lib/node_modules/openclaw/openclaw.mjs"
        launcher = members["lib/node_modules/openclaw/openclaw.mjs"]
        assert launcher.isfile() and launcher.mode == 0o755
        assert tar.extractfile(launcher).readline() == b"#!/usr/bin/env python3\n"
        manifest = json.load(tar.extractfile(members["lib/node_modules/openclaw/package.json"]))
        assert manifest["name"] == "openclaw" and manifest["version"] == "2026.11.30-standin"
        assert "bin/node" not in members
        tar.extractall(tmp_path / "prefix", filter="tar")
    binary = tmp_path / "prefix" / "bin" / "openclaw"
    assert subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout == "2026.11.30-standin\n"
    gw = GatewayProcess(tmp_path / "home", config(), command=[str(binary)]).wait_listening()
    try:
        c = Client(gw.port, device=Device())
        assert c.hello["payload"]["protocol"] == 3, "the bundle's mode is the stand-in's default"
        assert c.hello["payload"]["server"]["version"] == "2026.11.30-standin"
        c.close()
    finally:
        assert gw.stop() == 0
    # The appliance's installer accepts it as it would accept `npm install -g --prefix P openclaw`.
    r = admin.http.post(admin.url("/api/v1/agent/bundles"), data=path.read_bytes(), timeout=120,
                        headers={"Content-Type": "application/gzip"})
    assert r.status_code == 201, r.text
    assert r.json()["bundle"] == {"version": "2026.11.30-standin", "node": False, "active": True}
    installed = admin.daemon.data_dir / "agent" / "bundles" / "2026.11.30-standin"
    assert os.readlink(installed / "bin/openclaw") == "../lib/node_modules/openclaw/openclaw.mjs"
    assert stat.S_IMODE((installed / "lib/node_modules/openclaw/openclaw.mjs").stat().st_mode) == 0o755


def test_chunk_delay_spaces_the_stream_and_the_provider_runs_as_a_process(tmp_path):
    import time
    slow = FakeLLM(api_key="k", chunk_delay=0.03).start()
    try:
        conn, response = open_stream(slow, "/v1/chat/completions", OPENAI_BODY, {"Authorization": "Bearer k"})
        arrivals = [time.monotonic() for _ in sse_events(response)]
        conn.close()
    finally:
        slow.stop()
    # One sleep before each event but the last: a lower bound however the reader is scheduled.
    assert len(arrivals) > 5 and arrivals[-1] - arrivals[0] >= 0.03 * (len(arrivals) - 3)
    proc = subprocess.Popen([*PYTHON, str(STANDINS / "fake_llm.py"), "--port", "0", "--key", "k2"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(OPENAI_BODY).encode(),
                                     {"Content-Type": "application/json", "Authorization": "Bearer k2"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["choices"][0]["message"]["content"] == answer_for("Hello there")
    finally:
        proc.terminate()
        proc.wait(10)
