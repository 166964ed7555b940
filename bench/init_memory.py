#!/usr/bin/env python3
"""Memory of an instance's init (PID 1) with its four services running.

For each of 1 and --many instances, started by a real daemon with `--instance-services
standard+idle` (Xvfb, x11vnc, Chromium and a sleeping fourth service), waits until every service
is ready, lets the init settle, then samples `/proc/<init>/smaps_rollup` once a second and
prints the medians per init: Pss (and its anonymous, file and shmem parts) and Rss. The init
runs from a sealed memfd copy of the daemon's binary, shared by every init, so the binary's
pages show up as shmem, split between the inits that map them.

Peer: the same init with its idle trim (InstanceInit.releaseIdleMemory) switched off ("none")
or limited to the read-only pages ("text"), set through the daemon's CLAWORC_BENCH_INIT_TRIM.

Usage (root): bench/init_memory.py [--binary .build/release/claworc] [--many 3] [--settle 15] [--samples 10]
Traffic stays on loopback; the instances have no network.
"""
import argparse
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "Tests" / "harness")]
import claworc_harness  # noqa: E402
from claworc_harness import Daemon, bootstrap_admin, init_pid  # noqa: E402

FIELDS = ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "Rss")


def rollup(pid):
    values = {}
    for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        if name in FIELDS:
            values[name] = int(rest.split()[0])
    return values


def measure(binary, trim, count, settle, samples):
    """Median kB per field over samples and inits, for `count` instances with trim mode `trim`."""
    claworc_harness.BINARY = pathlib.Path(binary)
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-bench-"))
    base.chmod(0o711)
    os.environ["CLAWORC_BENCH_INIT_TRIM"] = trim
    daemon = Daemon(base / "data", ["--instance-services", "standard+idle"]).start()
    try:
        admin = bootstrap_admin(daemon)
        names = [f"mem{i}" for i in range(count)]
        ids = [admin.create(name)["id"] for name in names]
        for iid in ids:
            r = admin.post(f"/api/v1/instances/{iid}/start")
            assert r.status_code == 200, r.text
        for iid in ids:
            admin.wait_all_services_ready(iid, timeout=120)
        pids = [init_pid(daemon, name) for name in names]
        time.sleep(settle)   # steady state: start-up done, the init's first trims behind it
        seen = {f: [] for f in FIELDS}
        for _ in range(samples):
            for pid in pids:
                for f, v in rollup(pid).items():
                    seen[f].append(v)
            time.sleep(1)
        for iid in ids:
            admin.post(f"/api/v1/instances/{iid}/stop")
        return {f: statistics.median(v) for f, v in seen.items() if v}
    finally:
        daemon.stop()
        os.environ.pop("CLAWORC_BENCH_INIT_TRIM", None)
        shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build" / "release" / "claworc"))
    ap.add_argument("--many", type=int, default=3)
    ap.add_argument("--settle", type=float, default=15)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--modes", default="none,text,all")
    args = ap.parse_args()
    rows = []
    for count in (1, args.many):
        for trim in args.modes.split(","):
            m = measure(args.binary, trim, count, args.settle, args.samples)
            rows.append((count, trim, m))
            print(f"instances {count} trim {trim:<5} " + "  ".join(f"{f} {m.get(f, 0):6.0f} kB" for f in FIELDS), flush=True)
    print(f"\ninit PSS with four services (medians over {args.samples} samples per init, kB; target 3 MiB = 3072 kB)")
    for count in (1, args.many):
        base = next((m["Pss"] for c, t, m in rows if c == count and t == "none"), None)
        for c, trim, m in rows:
            if c != count:
                continue
            ratio = f"  ratio to no trim {m['Pss'] / base:.2f}" if base else ""
            print(f"  {count} instance(s), trim {trim:<5} Pss {m['Pss']:6.0f} (anon {m['Pss_Anon']:5.0f}, file "
                  f"{m['Pss_File']:5.0f}, shmem {m['Pss_Shmem']:5.0f})  Rss {m['Rss']:6.0f}{ratio}")


if __name__ == "__main__":
    main()
