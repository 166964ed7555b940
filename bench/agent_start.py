#!/usr/bin/env python3
"""The agent service's timings with the OpenClaw stand-in (Tests/standins) as the bundle:

- start request → service `agent` ready (its /healthz answered 200), and within that
  chromium ready → agent ready (the agent's own share: spawn, python3 start, config read,
  listen, first successful probe), from the services' log timestamps;
- an instance settings change that rewrites openclaw.json: the PUT's latency (config write +
  restart request) and PUT → agent ready again;
- `node --version` of the host's node (what the init's Node check costs once per binary).

Usage (root): bench/agent_start.py [--binary .build/debug/claworc] [--runs 5]
Traffic stays on loopback and inside the instance.
"""
import argparse
import datetime
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "Tests" / "harness"), str(ROOT / "Tests" / "standins")]
from claworc_harness import Daemon, bootstrap_admin  # noqa: E402
from bundle import make_bundle  # noqa: E402


def agent(inst):
    return next(s for s in inst["services"] if s["name"] == "agent")


def stamp(log, word):
    """The time of the last supervisor line in a service log that starts with `word`."""
    for line in reversed(log.read_text().splitlines()):
        ts, _, rest = line.partition(" ")
        if rest.startswith("sup " + word):
            return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    raise ValueError(f"no '{word}' in {log}")


def wait(client, iid, predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inst = client.instance(iid)
        if predicate(inst):
            return inst
        time.sleep(0.005)
    raise TimeoutError


def summary(name, values):
    values = sorted(values)
    print(f"{name}: median {statistics.median(values):.0f} ms, min {values[0]:.0f}, max {values[-1]:.0f} (n={len(values)})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-bench-agent-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data").start()
    try:
        admin = bootstrap_admin(daemon)
        r = admin.http.post(admin.url("/api/v1/agent/bundles"), data=open(make_bundle(base / "b.tar.gz"), "rb").read(),
                            headers={"Content-Type": "application/gzip"})
        assert r.status_code == 201, r.text
        r = admin.http.put(admin.url("/api/v1/providers/fake"), json={
            "api": "openai-completions", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-bench-key-0000", "models": ["a", "b"]})
        assert r.status_code == 200, r.text
        iid = admin.create("bench")["id"]
        logs = base / "data" / "instances" / str(iid) / "logs"
        to_ready, own_share, put_ms, put_to_ready = [], [], [], []
        for run in range(args.runs):
            t0 = time.time()
            assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
            wait(admin, iid, lambda i: agent(i)["state"] == "ready")
            to_ready.append((time.time() - t0) * 1000)
            own_share.append((stamp(logs / "agent.log", "ready") - stamp(logs / "chromium.log", "ready")) * 1000)
            pid = agent(admin.instance(iid))["pid"]
            t1 = time.time()
            r = admin.http.put(admin.url(f"/api/v1/instances/{iid}/settings"), json={"model": "fake/" + "ab"[run % 2]})
            put_ms.append((time.time() - t1) * 1000)
            assert r.json()["agent"] == "restarted", r.text
            wait(admin, iid, lambda i: agent(i)["state"] == "ready" and agent(i)["pid"] != pid)
            put_to_ready.append((time.time() - t1) * 1000)
            assert admin.post(f"/api/v1/instances/{iid}/stop").status_code == 200
            wait(admin, iid, lambda i: i["state"] == "stopped")
        summary("start request → agent ready", to_ready)
        summary("chromium ready → agent ready", own_share)
        summary("settings PUT (write + restart request)", put_ms)
        summary("settings PUT → agent ready again", put_to_ready)
    finally:
        daemon.stop()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        out = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        times.append((time.perf_counter() - t) * 1000)
    summary(f"node --version ({out})", times)


if __name__ == "__main__":
    main()
