#!/usr/bin/env python3
"""A fake LLM provider on loopback (stdlib http.server, threaded) for tests.

Speaks OpenAI `/v1/chat/completions` and `/v1/responses` and Anthropic `/v1/messages`, streamed
(SSE over chunked encoding, one event per chunk with `chunk_delay` seconds between them) or not,
with the usage fields those APIs report. It checks the one API key it expects (401 otherwise, in
each API's error shape), records every request (method, path, lower-cased headers, body) for assertions, and
answers deterministically from the prompt: `answer_for(prompt)`. A prompt containing "[429]" gets
a rate-limit error. `hold()` makes streams pause after their first piece of text until `release()`,
so a test can observe the first bytes, or stop a run half-way, before the rest is produced, without
racing the stream.
`streams` holds each streamed body as it was sent.

    llm = FakeLLM(api_key="sk-test").start()   # llm.url, llm.requests, llm.stop()
    python3 fake_llm.py --port 0 --key sk-test  # prints "fake-llm listening on http://127.0.0.1:PORT"
"""
import argparse
import http.server
import json
import re
import threading
import time
import uuid


def answer_for(prompt):
    return f"Fake answer to: {prompt.strip()}. Have a nice day."


def pieces(text):
    return re.findall(r"\S+\s*", text) or [""]


def _text(content):
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


def prompt_of(path, body):
    """The last user message and the word count of everything sent (a token stand-in)."""
    if path.endswith("/responses"):
        items = body.get("input", "")
        items = [{"role": "user", "content": items}] if isinstance(items, str) else items
    else:
        items = body.get("messages", [])
    texts = [_text(m.get("content")) for m in items if isinstance(m, dict)]
    users = [_text(m.get("content")) for m in items if isinstance(m, dict) and m.get("role") == "user"]
    system = body.get("system") or body.get("instructions") or ""
    words = sum(len(t.split()) for t in texts) + len(_text(system).split())
    return (users[-1] if users else ""), max(words, 1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-llm"
    # Each streamed event is its own small write: without TCP_NODELAY, Nagle holds an event
    # until the previous one is acknowledged, and on a kept-alive connection the peer's delayed
    # ACK makes that 40 ms. Providers' streaming servers send at once.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def _send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        llm = self.server.llm
        if self.path == "/v1/models" and self._authorised(openai=True):
            self._send_json(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in llm.models]})
        elif self.path != "/v1/models":
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def _authorised(self, openai):
        llm = self.server.llm
        bearer = self.headers.get("Authorization", "")
        key = bearer[7:] if bearer.startswith("Bearer ") else None
        if not openai:
            key = self.headers.get("x-api-key") or key
        if key == llm.api_key:
            return True
        if openai:
            self._send_json(401, {"error": {"message": f"Incorrect API key provided: {key!r}.", "type": "invalid_request_error",
                                            "param": None, "code": "invalid_api_key"}})
        else:
            self._send_json(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        return False

    def do_POST(self):
        llm = self.server.llm
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        llm.record({"method": "POST", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                    "at": time.monotonic(), "peer": self.client_address})
        routes = {"/v1/chat/completions": self.chat_completions, "/v1/responses": self.openai_responses, "/v1/messages": self.anthropic_messages}
        route = routes.get(self.path)
        if route is None:
            return self._send_json(404, {"error": {"message": f"unknown path {self.path}", "type": "invalid_request_error"}})
        anthropic = self.path == "/v1/messages"
        if not self._authorised(openai=not anthropic):
            return
        if anthropic and not self.headers.get("anthropic-version"):
            return self._send_json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                    "message": "anthropic-version: header is required"}})
        if not isinstance(body, dict) or not body.get("model"):
            return self._send_json(400, {"error": {"message": "a JSON body with a model is required", "type": "invalid_request_error"}})
        prompt, input_tokens = prompt_of(self.path, body)
        if "[429]" in prompt:
            if anthropic:
                return self._send_json(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
            return self._send_json(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
        try:
            route(body, answer_for(prompt), input_tokens)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-stream (a stopped run): what a provider sees, not an error here.
            self.close_connection = True

    # -- streaming plumbing: one SSE event per HTTP chunk, flushed, with the configured delay
    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        self._sent = bytearray()
        self._pieces = 0
        self.server.llm.streams.append(self._sent)

    def _event(self, data, event=None, piece=False):
        """One SSE event; `piece` marks one carrying a piece of the answer's text."""
        llm = self.server.llm
        if self._pieces:
            llm.gate.wait()
        if llm.chunk_delay:
            time.sleep(llm.chunk_delay)
        self._pieces += piece
        text = (f"event: {event}\n" if event else "") + f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
        payload = text.encode()
        self._sent += payload
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def _end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def chat_completions(self, body, answer, input_tokens):
        parts = pieces(answer)
        usage = {"prompt_tokens": input_tokens, "completion_tokens": len(parts), "total_tokens": input_tokens + len(parts)}
        ident, created, model = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time()), body["model"]
        if not body.get("stream"):
            return self._send_json(200, {"id": ident, "object": "chat.completion", "created": created, "model": model,
                                         "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                                      "logprobs": None, "finish_reason": "stop"}], "usage": usage})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta, finish=None, **extra):
            return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        self._start_stream()
        self._event(chunk({"role": "assistant", "content": ""}, **({"usage": None} if include_usage else {})))
        for part in parts:
            self._event(chunk({"content": part}, **({"usage": None} if include_usage else {})), piece=True)
        self._event(chunk({}, "stop", **({"usage": None} if include_usage else {})))
        if include_usage:
            self._event({"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [], "usage": usage})
        self._event("[DONE]")
        self._end_stream()

    def openai_responses(self, body, answer, input_tokens):
        parts = pieces(answer)
        ident, item = "resp_" + uuid.uuid4().hex[:24], "msg_" + uuid.uuid4().hex[:24]
        usage = {"input_tokens": input_tokens, "output_tokens": len(parts), "total_tokens": input_tokens + len(parts)}
        message = {"type": "message", "id": item, "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": answer, "annotations": []}]}
        done = {"id": ident, "object": "response", "created_at": int(time.time()), "status": "completed",
                "model": body["model"], "output": [message], "usage": usage}
        if not body.get("stream"):
            return self._send_json(200, done)
        self._start_stream()
        seq = iter(range(1_000_000))
        started = {**done, "status": "in_progress", "output": [], "usage": None}
        self._event({"type": "response.created", "sequence_number": next(seq), "response": started}, "response.created")
        for part in parts:
            self._event({"type": "response.output_text.delta", "sequence_number": next(seq), "item_id": item,
                         "output_index": 0, "content_index": 0, "delta": part}, "response.output_text.delta", piece=True)
        self._event({"type": "response.output_text.done", "sequence_number": next(seq), "item_id": item,
                     "output_index": 0, "content_index": 0, "text": answer}, "response.output_text.done")
        self._event({"type": "response.completed", "sequence_number": next(seq), "response": done},
                    "response.completed")
        self._end_stream()

    def anthropic_messages(self, body, answer, input_tokens):
        parts = pieces(answer)
        ident, model = "msg_" + uuid.uuid4().hex[:24], body["model"]
        if not body.get("stream"):
            return self._send_json(200, {"id": ident, "type": "message", "role": "assistant", "model": model,
                                         "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn",
                                         "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": len(parts)}})
        self._start_stream()
        self._event({"type": "message_start", "message": {
            "id": ident, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}, "message_start")
        self._event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start")
        self._event({"type": "ping"}, "ping")
        for part in parts:
            self._event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}},
                        "content_block_delta", piece=True)
        self._event({"type": "content_block_stop", "index": 0}, "content_block_stop")
        self._event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                     "usage": {"output_tokens": len(parts)}}, "message_delta")
        self._event({"type": "message_stop"}, "message_stop")
        self._end_stream()


class FakeLLM:
    def __init__(self, api_key="sk-fake-test", chunk_delay=0.0, host="127.0.0.1", port=0, models=("fake-model",)):
        self.api_key, self.chunk_delay, self.models = api_key, chunk_delay, list(models)
        self.requests = []
        # The body of every stream as sent (one bytearray per stream, in order), so a test can
        # hold what a client received against what the provider produced.
        self.streams = []
        self._lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.server.llm = self
        self.url = f"http://{host}:{self.server.server_address[1]}"

    def record(self, request):
        with self._lock:
            self.requests.append(request)

    def hold(self):
        self.gate.clear()

    def release(self):
        self.gate.set()

    def start(self):
        threading.Thread(target=self.server.serve_forever, args=(0.1,), name="fake-llm", daemon=True).start()
        return self

    def stop(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def main():
    parser = argparse.ArgumentParser(description="A fake LLM provider on loopback.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="sk-fake-test")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between streamed chunks")
    args = parser.parse_args()
    llm = FakeLLM(args.key, args.delay, port=args.port)
    print(f"fake-llm listening on {llm.url}", flush=True)
    llm.server.serve_forever()


if __name__ == "__main__":
    main()
