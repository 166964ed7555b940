#!/usr/bin/env python3
"""Chat timings and memory, through the real path: the OpenClaw stand-in installed as the bundle
through the upload API, run by each instance's `agent` service with the config the daemon wrote,
calling a fake provider on the host's loopback through the daemon's key proxy.

- start request → chat usable: POST start, a chat WebSocket opened at once, timed until its
  `status: ready` (Xvfb, Chromium, the agent and its readiness, then the daemon's link: dial
  through the init, upgrade, signed connect, hello-ok). The daemon logs `since_agent_ready_us`
  on every hello-ok that followed the agent's `ready` report: agent ready → chat usable.
- start request → first chat answer: then a message sent, timed to its first delta and final.
- daemon RSS with 20 more idle chat WebSockets on one instance.

Usage (root): bench/chat_bench.py [--binary .build/release/claworc] [--instances 5]
Traffic stays on loopback and inside the instances' own network namespaces.
"""
import argparse
import pathlib
import re
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "harness"))
sys.path.insert(0, str(ROOT / "Tests" / "integration"))
sys.path.insert(0, str(ROOT / "Tests" / "standins"))

import claworc_harness  # noqa: E402
from claworc_harness import Daemon, bootstrap_admin  # noqa: E402
from bundle import make_bundle  # noqa: E402
from chat_helpers import Chat  # noqa: E402
from fake_llm import FakeLLM  # noqa: E402
from test_agent_bundles import upload  # noqa: E402


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build/release/claworc"))
    ap.add_argument("--instances", type=int, default=5)
    args = ap.parse_args()
    claworc_harness.BINARY = pathlib.Path(args.binary)
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-chatbench-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data").start()
    llm = FakeLLM("sk-bench-key").start()
    try:
        admin = bootstrap_admin(daemon)
        make_bundle(str(base / "openclaw.tar.gz"), "2026.12.1", "v4")
        assert upload(admin, (base / "openclaw.tar.gz").read_bytes()).status_code == 201
        assert admin.http.put(admin.url("/api/v1/providers/fake"), timeout=30, json={
            "api": "openai-completions", "base_url": llm.url + "/v1", "api_key": "sk-bench-key",
            "models": ["fake-model"]}).status_code == 200
        assert admin.http.put(admin.url("/api/v1/settings/instance-defaults"), json={"model": "fake/fake-model"},
                              timeout=30).status_code == 200
        usable, firsts, finals = [], [], []
        for n in range(args.instances):
            iid = admin.create(f"bench-{n}")["id"]
            t0 = time.monotonic()
            assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
            chat = Chat(admin, iid)
            chat.ready(120)
            t_ready = time.monotonic()
            chat.send("send", text="hello bench")
            chat.next(lambda m: m["type"] == "delta", 60, "the first delta")
            t_first = time.monotonic()
            chat.next(lambda m: m["type"] == "final", 60, "the final")
            t_final = time.monotonic()
            chat.close()
            admin.post(f"/api/v1/instances/{iid}/stop")
            usable.append(t_ready - t0)
            firsts.append(t_first - t0)
            finals.append(t_final - t0)
            print(f"instance {iid}: chat usable {1000 * (t_ready - t0):.0f} ms, first delta {1000 * (t_first - t0):.0f} ms, "
                  f"final {1000 * (t_final - t0):.0f} ms after the start request")
        med = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
        print(f"median after the start request: chat usable {med(usable):.0f} ms, first answer delta {med(firsts):.0f} ms, "
              f"final {med(finals):.0f} ms")
        log = daemon.log_path.read_text(errors="replace")
        since = [int(m) / 1000 for m in re.findall(r"since_agent_ready_us=(\d+)", log)]
        shakes = [int(m) / 1000 for m in re.findall(r"handshake_us=(\d+)", log)]
        if since:
            print(f"agent ready → chat usable (daemon log): median {statistics.median(since):.1f} ms, "
                  f"min {min(since):.1f}, max {max(since):.1f} over {len(since)}")
        if shakes:
            print(f"of which dial through the init → hello-ok: median {statistics.median(shakes):.1f} ms, max {max(shakes):.1f} ms")

        iid = admin.create("bench-idle")["id"]
        admin.post(f"/api/v1/instances/{iid}/start")
        pid = daemon.proc.pid
        warm = Chat(admin, iid)
        warm.ready(120)
        time.sleep(1)
        before = rss_kib(pid)
        sockets = [Chat(admin, iid) for _ in range(20)]
        for s in sockets:
            s.ready()
            s.of_type("history")
        after = rss_kib(pid)
        time.sleep(5)
        idle = rss_kib(pid)
        print(f"daemon RSS: {before} KiB with 1 chat socket, {after} KiB with 21 open, {idle} KiB after 5 s idle "
              f"(+{after - before} KiB for 20 sockets, {(after - before) / 20:.0f} KiB each)")
        for s in sockets + [warm]:
            s.close()
        admin.post(f"/api/v1/instances/{iid}/stop")
    finally:
        llm.stop()
        daemon.stop()


if __name__ == "__main__":
    main()
