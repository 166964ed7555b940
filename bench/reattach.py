#!/usr/bin/env python3
"""How long a restarted daemon takes to re-attach to the instances that kept running.

For N = 1, 10, 30 light instances (`--instance-services none`: the init alone, which is what
re-attaching talks to; services would only add processes that are never touched), the daemon
is killed with SIGKILL and started again, `--runs` times. Reported per N, medians:
  reattach_ms  the daemon's own measure (its "re-attached running instances" log line: every
               recorded init checked by pid and start time, pidfd taken, control listener
               connected, hello with the service snapshot received; all instances at once)
  restart_ms   exec of the new daemon -> it listens (re-attach happens before it serves), as a
               client sees it; includes process start, migrations, nftables and cgroup setup
Named peer: what a daemon restart cost before instances outlived it, starting the same N
instances again (sequential `POST /start`, as the old daemon's autostart did), on this
machine in the same run.

Usage (root): bench/reattach.py [--binary .build/release/claworc] [--runs 5] [--counts 1,10,30]
"""
import argparse
import os
import pathlib
import re
import shutil
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "harness"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build" / "release" / "claworc"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--counts", default="1,10,30")
    args = ap.parse_args()
    os.environ["CLAWORC_BIN"] = str(pathlib.Path(args.binary).resolve())
    import claworc_harness as harness   # reads CLAWORC_BIN at import
    from claworc_harness import Daemon, bootstrap_admin

    print(f"binary {args.binary}, {args.runs} runs per N, instances with services off")
    rows = []
    for n in [int(c) for c in args.counts.split(",")]:
        work = pathlib.Path(tempfile.mkdtemp(prefix="claworc-bench-"))
        work.chmod(0o711)
        daemon = Daemon(work / "data", extra_args=["--instance-services", "none"])
        try:
            daemon.start()
            admin = bootstrap_admin(daemon)
            ids = [admin.create(f"bench-{i}")["id"] for i in range(n)]
            began = time.monotonic()
            for iid in ids:
                r = admin.post(f"/api/v1/instances/{iid}/start")
                assert r.status_code == 200, r.text
            relaunch_ms = (time.monotonic() - began) * 1000
            reattach, restart = [], []
            for _ in range(args.runs):
                daemon.kill()
                began = time.monotonic()
                daemon.start()
                restart.append((time.monotonic() - began) * 1000)
                line = [l for l in daemon.log_text().splitlines() if "re-attached running instances" in l][-1]
                count = int(re.search(r"count=(\d+)", line).group(1))
                assert count == n, f"re-attached {count} of {n}: {line}"
                reattach.append(float(re.search(r"ms=([\d.]+)", line).group(1)))
                states = {i["state"] for i in admin.get("/api/v1/instances").json()["instances"]}
                assert states == {"running"}, states
            rows.append((n, statistics.median(reattach), statistics.median(restart), relaunch_ms))
        finally:
            if daemon.proc is None:
                daemon.start()
            daemon.stop()
            shutil.rmtree(work, ignore_errors=True)
    harness.reap_orphaned_inits()
    print(f"\n{'N':>4} {'reattach_ms':>12} {'restart_ms':>11} {'peer: start N again (ms)':>25} {'ratio reattach/peer':>20}")
    for n, reattach_ms, restart_ms, relaunch_ms in rows:
        print(f"{n:>4} {reattach_ms:>12.1f} {restart_ms:>11.0f} {relaunch_ms:>25.0f} {reattach_ms / relaunch_ms:>20.3f}")


if __name__ == "__main__":
    main()
