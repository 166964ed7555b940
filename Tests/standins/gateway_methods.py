"""The gateway stand-in's RPC methods (a mixin of Gateway): chat.send/history/abort,
sessions.reset/list, models.list, health and status. Session keys are canonicalised
(`main` ≡ `agent:main:main`, `x` ≡ `agent:main:x`); transcripts live in memory."""
import copy
import threading
import uuid

from gateway_runs import Run, now_ms

WRITE, READ = "operator.write", "operator.read"


def canonical(key):
    if key.startswith("agent:"):
        return key
    return "agent:main:main" if key == "main" else "agent:main:" + key


class Methods:
    def m_health(self, conn, params):
        return {"ok": True, "ts": now_ms()}

    def m_status(self, conn, params):
        with self.lock:
            return {"ok": True, "version": self.version, "protocol": self.settings["protocol"],
                    "uptimeMs": self.uptime_ms(), "sessions": len(self.sessions), "activeRuns": sorted(self.runs)}

    def m_chat_send(self, conn, params):
        key, message, run_id = params["sessionKey"], params["message"], params["idempotencyKey"]
        if message.strip() == "/stop":
            return self.m_chat_abort(conn, {"sessionKey": key})
        if message.strip() in ("/new", "/reset"):
            self.m_sessions_reset(conn, {"key": key})
            return {"runId": run_id, "status": "ok"}
        with self.lock:
            if run_id in self.runs:
                return {"runId": run_id, "status": "in_flight"}
            if run_id in self.finished:
                return {"runId": run_id, "status": "ok"}
            run = Run(self, conn, key, canonical(key), run_id, message)
            self.runs[run_id] = run
        if self.settings["noise"]:
            self.noise()
        threading.Thread(target=run.run, name=f"run-{run_id}", daemon=True).start()
        return {"runId": run_id, "status": "started"}

    def noise(self):
        """Traffic the dashboard must ignore: another run in another session, an unknown stream
        and an unknown event name."""
        other = "noise-" + uuid.uuid4().hex[:8]
        self.broadcast("agent", {"runId": other, "seq": 1, "stream": "standin-unknown", "ts": now_ms(),
                                 "data": {}, "sessionKey": "agent:main:elsewhere"}, scope=READ)
        self.broadcast("chat", {"runId": other, "sessionKey": "agent:main:elsewhere", "seq": 1, "state": "delta",
                                "message": {"role": "assistant", "content": [{"type": "text", "text": "not yours"}]},
                                **({"deltaText": "not yours"} if self.settings["protocol"] >= 4 else {})}, scope=READ)
        self.broadcast("standin.unknown-event", {"note": "ignore me"})

    def m_chat_history(self, conn, params):
        session = self.session(canonical(params["sessionKey"]))
        with self.lock:
            messages = copy.deepcopy(session["messages"][-params.get("limit", 200):])
        return {"sessionKey": params["sessionKey"], "sessionId": session["sessionId"], "messages": messages}

    def m_chat_abort(self, conn, params):
        key = canonical(params["sessionKey"])
        with self.lock:
            runs = [r for r in self.runs.values() if r.canonical == key
                    and params.get("runId") in (None, r.run_id)]
        aborted = []
        for run in runs:
            run.abort.set()
            if run.finish("aborted", **({"message": {"role": "assistant", "content": [{"type": "text", "text": run.text}],
                                                      "timestamp": now_ms()}} if run.text else {})):
                aborted.append(run.run_id)
        return {"ok": True, "aborted": bool(aborted), "runIds": aborted}

    def m_sessions_reset(self, conn, params):
        key = canonical(params["key"])
        with self.lock:
            self.sessions[key] = {"sessionId": str(uuid.uuid4()), "messages": [], "updatedAt": now_ms()}
            return {"ok": True, "key": key, "entry": {"sessionId": self.sessions[key]["sessionId"]}}

    def m_sessions_list(self, conn, params):
        with self.lock:
            rows = [{"key": k, "sessionId": s["sessionId"], "updatedAt": s["updatedAt"]} for k, s in self.sessions.items()]
        return {"ts": now_ms(), "count": len(rows), "sessions": rows[: params.get("limit", len(rows))]}

    def m_models_list(self, conn, params):
        models = []
        for provider_id, provider in self.config.get("models", {}).get("providers", {}).items():
            for model in provider.get("models", []):
                models.append({"id": model["id"], "name": model.get("name", model["id"]), "provider": provider_id})
        return {"models": models}

