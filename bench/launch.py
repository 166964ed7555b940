#!/usr/bin/env python3
"""Launch overhead of an instance, side by side with bubblewrap and unshare on this machine.

claworc: `claworc __bench-launch` times, in-process, request -> init exec'd and acknowledged
(its hello on the control socket), with user, pid, mount, uts, ipc, net and cgroup namespaces,
the cgroup (CLONE_INTO_CGROUP, when the host has cgroup v2), seccomp, capabilities, rlimits
and pivot_root; then 500 launch/stop cycles (with a veth each) and a leak count (processes, mounts,
cgroups, veths, namespaces pinned by a descriptor).
Peers, timed with hyperfine -N in the same run:
  bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true
  unshare -fpmuinU -r /bin/true

Usage (root): bench/launch.py [--binary .build/release/claworc] [--runs 200] [--cycles 500]
Needs: scripts/install-deps.sh bench (bubblewrap, hyperfine).
"""
import argparse
import json
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
PEERS = {
    "bubblewrap": ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "/bin/true"],
    "unshare": ["unshare", "-fpmuinU", "-r", "/bin/true"],
}


def peer(name, argv, runs):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["hyperfine", "-N", "--warmup", "5", "--runs", str(runs), "--export-json", out.name,
                        "--style", "none", " ".join(argv)], check=True, stdout=subprocess.DEVNULL)
        times = sorted(t * 1000 for t in json.load(open(out.name))["results"][0]["times"])
    return statistics.median(times), times[len(times) * 9 // 10]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build" / "release" / "claworc"))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=500)
    args = ap.parse_args()
    for tool in ("bwrap", "hyperfine"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run scripts/install-deps.sh bench")
    work = pathlib.Path(tempfile.mkdtemp(prefix="claworc-bench-"))
    work.chmod(0o711)
    try:
        out = subprocess.run([args.binary, "__bench-launch", "--runs", str(args.runs), "--cycles", str(args.cycles),
                              "--data-dir", str(work / "data"), "--egress"], capture_output=True, text=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(out.stdout, end="")
    if out.returncode != 0:
        sys.exit(f"claworc bench failed:\n{out.stderr}")
    m = re.search(r"launch_ms median ([\d.]+) p90 ([\d.]+)", out.stdout)
    ours = (float(m.group(1)), float(m.group(2)))
    rows = [("claworc (all namespaces, cgroup, seccomp, pivot_root, init ack)", *ours)]
    for name, argv in PEERS.items():
        rows.append((f"{name}: {' '.join(argv)}", *peer(name, argv, args.runs)))
    print(f"\nlaunch overhead, {args.runs} runs each (ms)")
    for label, med, p90 in rows:
        print(f"  {label:<88} median {med:7.2f}  p90 {p90:7.2f}")
    for label, med, _ in rows[1:]:
        print(f"  ratio claworc / {label.split(':')[0]}: {ours[0] / med:.2f}")


if __name__ == "__main__":
    main()
