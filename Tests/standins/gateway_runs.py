"""Agent runs of the gateway stand-in: the "model" is the configured provider, called over HTTP
(streaming) with the configured key, and its text is streamed back as `agent`/`chat` events.

A message containing TOOL_MARKER makes the run call a (fake) tool first; the tool events go only
to the socket that sent chat.send and only when it advertised caps ["tool-events"]."""
import json
import os
import threading
import time
import urllib.error
import urllib.request

from gateway_config import secret

TOOL_MARKER = "use a tool"
PROVIDER_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def now_ms():
    return int(time.time() * 1000)


class ProviderError(Exception):
    def __init__(self, message, kind="unknown"):
        super().__init__(message)
        self.kind = kind


def resolve_model(config):
    """(providerId, modelId, provider config) of agents.defaults.model.primary."""
    model = config.get("agents", {}).get("defaults", {}).get("model")
    ref = model.get("primary") if isinstance(model, dict) else model
    if not ref:
        raise ProviderError("No model configured: set agents.defaults.model.primary.")
    provider_id, _, model_id = ref.partition("/")
    provider = config.get("models", {}).get("providers", {}).get(provider_id)
    if provider is None:
        raise ProviderError(f"Unknown provider {provider_id}: the stand-in only calls models.providers entries.")
    return provider_id, model_id, provider


def _sse(response):
    """(event, data) pairs of a server-sent event stream."""
    event, data = None, []
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def stream_provider(config, text, history, abort):
    """Yields ("text", piece) and finally ("usage", {...}); the provider's own wire format."""
    provider_id, model_id, provider = resolve_model(config)
    api = provider.get("api", "openai-completions")
    key = secret(provider.get("apiKey")) or os.environ.get(
        PROVIDER_ENV.get(provider_id, provider_id.upper().replace("-", "_") + "_API_KEY"), "")
    base = provider["baseUrl"].rstrip("/")
    messages = history + [{"role": "user", "content": text}]
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **provider.get("headers", {})}
    if api == "openai-completions":
        url, body = base + "/chat/completions", {"model": model_id, "messages": messages, "stream": True,
                                                 "stream_options": {"include_usage": True}}
        headers["Authorization"] = f"Bearer {key}"
    elif api == "openai-responses":
        url, body = base + "/responses", {"model": model_id, "input": messages, "stream": True}
        headers["Authorization"] = f"Bearer {key}"
    elif api == "anthropic-messages":
        url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        body = {"model": model_id, "max_tokens": 4096, "messages": messages, "stream": True}
        headers.update({"x-api-key": key, "anthropic-version": "2023-06-01"})
    else:
        raise ProviderError(f"The stand-in does not speak the {api} API.")
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        response = urllib.request.urlopen(request, timeout=provider.get("timeoutSeconds", 120))
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")[:300]
        kind = {429: "rate_limit", 408: "timeout"}.get(e.code, "unknown")
        raise ProviderError(f"{provider_id} answered HTTP {e.code}: {detail}", kind)
    except (urllib.error.URLError, OSError) as e:
        raise ProviderError(f"{provider_id} is unreachable: {e}")
    usage = {}
    with response:
        for event, data in _sse(response):
            if abort.is_set():
                return
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if api == "openai-completions":
                for choice in chunk.get("choices") or []:
                    if choice.get("delta", {}).get("content"):
                        yield "text", choice["delta"]["content"]
                if chunk.get("usage"):
                    u = chunk["usage"]
                    usage = {"input": u.get("prompt_tokens", 0), "output": u.get("completion_tokens", 0)}
            elif api == "openai-responses":
                if chunk.get("type") == "response.output_text.delta":
                    yield "text", chunk["delta"]
                elif chunk.get("type") == "response.completed":
                    u = chunk["response"].get("usage") or {}
                    usage = {"input": u.get("input_tokens", 0), "output": u.get("output_tokens", 0)}
            else:
                kind = chunk.get("type")
                if kind == "message_start":
                    usage["input"] = chunk["message"]["usage"].get("input_tokens", 0)
                elif kind == "content_block_delta" and chunk["delta"].get("type") == "text_delta":
                    yield "text", chunk["delta"]["text"]
                elif kind == "message_delta":
                    usage["output"] = chunk.get("usage", {}).get("output_tokens", 0)
                elif kind == "error":
                    raise ProviderError(chunk.get("error", {}).get("message", "provider error"))
    usage["totalTokens"] = usage.get("input", 0) + usage.get("output", 0)
    yield "usage", usage


class Run:
    """One chat.send; `lock` orders its events against chat.abort, which ends it from another thread."""

    def __init__(self, gateway, conn, session_key, canonical, run_id, message):
        self.gateway, self.conn = gateway, conn
        self.session_key, self.canonical = session_key, canonical
        self.run_id, self.message = run_id, message
        self.abort = threading.Event()
        self.lock = threading.Lock()
        self.done = False
        self.agent_seq = self.chat_seq = 0
        self.text = ""

    def agent(self, stream, data, only=None):
        self.agent_seq += 1
        payload = {"runId": self.run_id, "seq": self.agent_seq, "stream": stream, "ts": now_ms(),
                   "data": data, "sessionKey": self.canonical}
        self.gateway.broadcast("agent", payload, scope="operator.read", only=only)

    def chat(self, state, **fields):
        self.chat_seq += 1
        self.gateway.broadcast("chat", {"runId": self.run_id, "sessionKey": self.session_key,
                                        "seq": self.chat_seq, "state": state, **fields}, scope="operator.read")

    def finish(self, state, **fields):
        """Emits the terminal events once; False if the run had already ended."""
        with self.lock:
            if self.done:
                return False
            self.done = True
            self.chat(state, **fields)
            phase = "error" if state == "error" else "end"
            data = {"phase": phase, "endedAt": now_ms()}
            if state == "error":
                data["error"] = fields.get("errorMessage", "")
            self.agent("lifecycle", data)
        self.gateway.run_finished(self)
        return True

    def run(self):
        with self.lock:
            self.agent("lifecycle", {"phase": "start", "startedAt": now_ms()})
        session = self.gateway.session(self.canonical)
        history = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str)
                    else "".join(b.get("text", "") for b in m["content"])}
                   for m in session["messages"] if m["role"] in ("user", "assistant")]
        user = {"role": "user", "content": self.message, "timestamp": now_ms()}
        tool_messages, tool_blocks = [], []
        if TOOL_MARKER in self.message.lower():
            tool_blocks, tool_messages = self._tool()
        usage, first = {}, True
        try:
            for kind, value in stream_provider(self.gateway.config, self.message, history, self.abort):
                if kind == "usage":
                    usage = value
                    continue
                with self.lock:
                    if self.done:
                        break
                    self.text += value
                    self.agent("assistant", {"text": self.text, "delta": value})
                    for _ in range(2 if first else 1):  # an identical snapshot once: clients must not append
                        self.chat("delta", **self._delta(value if _ == 0 else ""))
                    first = False
        except ProviderError as e:
            self.gateway.record(self.canonical, [user, *tool_messages])
            self.finish("error", errorMessage=str(e), errorKind=e.kind)
            return
        except Exception as e:  # a broken provider stream is a run error, not a dead gateway
            self.finish("error", errorMessage=f"provider stream failed: {e}", errorKind="unknown")
            return
        provider_id, model_id, _ = resolve_model(self.gateway.config)
        content = tool_blocks + ([{"type": "text", "text": self.text}] if self.text else [])
        assistant = {"role": "assistant", "content": content, "provider": provider_id, "model": model_id,
                     "usage": usage, "stopReason": "aborted" if self.abort.is_set() else "stop", "timestamp": now_ms()}
        self.gateway.record(self.canonical, [user, *tool_messages, assistant])
        final = {"stopReason": "stop", "usage": usage}
        if self.text:  # an empty reply has a final without message: clients reload history
            final["message"] = {"role": "assistant", "content": [{"type": "text", "text": self.text}], "timestamp": now_ms()}
        self.finish("final", **final)

    def _delta(self, piece):
        fields = {"message": {"role": "assistant", "content": [{"type": "text", "text": self.text}], "timestamp": now_ms()}}
        if self.gateway.settings["protocol"] >= 4:
            fields["deltaText"] = piece
        return fields

    def _tool(self):
        call_id = f"call_{self.run_id[:8]}"
        args = {"command": "echo standin-tool"}
        listener = self.conn if "tool-events" in self.conn.caps else None
        with self.lock:
            if listener:
                self.agent("tool", {"phase": "start", "name": "exec", "toolCallId": call_id, "args": args}, only=listener)
                self.agent("tool", {"phase": "result", "name": "exec", "toolCallId": call_id, "isError": False}, only=listener)
        blocks = [{"type": "toolCall", "id": call_id, "name": "exec", "arguments": args}]
        result = {"role": "toolResult", "toolCallId": call_id, "toolName": "exec",
                  "content": [{"type": "text", "text": "standin-tool"}], "isError": False, "timestamp": now_ms()}
        return blocks, [result]
