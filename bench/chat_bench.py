#!/usr/bin/env python3
"""Chat timings and memory, through the daemon's gateway link against the stand-in gateway
running inside real instances (started through the exec API, as Tests/integration/chat_helpers
does until the `agent` service runs it):

- link open → chat usable: a chat WebSocket opened on an instance whose gateway already listens,
  timed until its `status: ready` (the daemon dials through the instance's init, upgrades,
  answers the challenge with a signed connect and gets hello-ok). This is the work that follows
  the agent service's `ready`; the daemon also logs `since_agent_ready_us` on every hello-ok that
  followed a `ready` report (the event-driven path, once the agent service exists).
- start request → first chat answer: POST start, the stand-in and fake provider started inside,
  chat opened, a message sent, timed to its first delta and to its final.
- daemon RSS with 20 idle chat WebSockets (VmRSS before and after opening them, and after 5 s idle).

Usage (root): bench/chat_bench.py [--binary .build/debug/claworc] [--instances 5]
"""
import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "harness"))
sys.path.insert(0, str(ROOT / "Tests" / "integration"))

import claworc_harness  # noqa: E402
from claworc_harness import Daemon, bootstrap_admin  # noqa: E402
from chat_helpers import Chat, Standin  # noqa: E402


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build/debug/claworc"))
    ap.add_argument("--instances", type=int, default=5)
    args = ap.parse_args()
    claworc_harness.BINARY = pathlib.Path(args.binary)
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-chatbench-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data", extra_args=["--instance-services", "none"]).start()
    try:
        admin = bootstrap_admin(daemon)
        opens, firsts, finals, starts = [], [], [], []
        for n in range(args.instances):
            iid = admin.create(f"bench-{n}")["id"]
            t0 = time.monotonic()
            assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
            t_running = time.monotonic()
            Standin(daemon, admin, iid, chunk_delay=0.0).start()
            t_gateway = time.monotonic()
            chat = Chat(admin, iid)
            chat.ready()
            t_ready = time.monotonic()
            chat.send("send", text="hello bench")
            chat.next(lambda m: m["type"] == "delta")
            t_first = time.monotonic()
            chat.next(lambda m: m["type"] == "final")
            t_final = time.monotonic()
            chat.close()
            starts.append(t_running - t0)
            opens.append(t_ready - t_gateway)
            firsts.append(t_first - t0)
            finals.append(t_final - t0)
            print(f"instance {iid}: start {1000 * (t_running - t0):.0f} ms, stand-in up {1000 * (t_gateway - t_running):.0f} ms, "
                  f"link open→ready {1000 * (t_ready - t_gateway):.1f} ms, first delta {1000 * (t_first - t0):.0f} ms, "
                  f"final {1000 * (t_final - t0):.0f} ms after the start request")
        med = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
        print(f"median: start request → running {med(starts):.0f} ms; link open → chat usable {med(opens):.1f} ms "
              f"(max {1000 * max(opens):.1f}); start request → first answer delta {med(firsts):.0f} ms, → final {med(finals):.0f} ms")

        import re
        shakes = [int(m) / 1000 for m in re.findall(r"handshake_us=(\d+)", daemon.log_path.read_text(errors="replace"))]
        if shakes:
            print(f"daemon log, dial through the init → hello-ok: median {statistics.median(shakes):.1f} ms, "
                  f"max {max(shakes):.1f} ms over {len(shakes)} connects")

        iid = admin.create("bench-idle")["id"]
        admin.post(f"/api/v1/instances/{iid}/start")
        Standin(daemon, admin, iid).start()
        pid = daemon.proc.pid
        warm = Chat(admin, iid)
        warm.ready()
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
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
