#!/usr/bin/env python3
"""Time from "start instance" to the VNC stream showing Chromium, and the daemon's memory.

Claworc: POST /api/v1/instances/{id}/start, then RFB over the daemon's WebSocket until a frame
shows Chromium (>= 3 distinct colours). Peer, run side by side on the same machine: the same
three programs (Xvfb, x11vnc, Chromium with a fresh profile) started directly on the host with
no sandbox, polled over plain TCP the same way. The ratio is the cost of the sandbox path.

Usage (root): bench/start_to_vnc.py [--binary .build/release/claworc] [--runs 5]
Traffic stays on loopback and inside the instance's own network namespace.
"""
import argparse
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "Tests" / "harness"), str(ROOT / "Tests" / "integration")]
from claworc_harness import Client, Daemon, bootstrap_admin  # noqa: E402
from rfb import RFBClient, TCPRFBClient  # noqa: E402


def until_chromium_visible(connect, deadline_s=90):
    start_deadline = time.monotonic() + deadline_s
    while time.monotonic() < start_deadline:
        try:
            rfb = connect().handshake()
        except (OSError, ConnectionError, AssertionError):
            time.sleep(0.02)
            continue
        try:
            while time.monotonic() < start_deadline:
                if rfb.distinct_colours(rfb.frame()) >= 3:
                    return
        except (OSError, ConnectionError):
            time.sleep(0.02)
        finally:
            rfb.close()
    raise TimeoutError("Chromium never became visible")


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def claworc_runs(binary, runs):
    import claworc_harness
    claworc_harness.BINARY = pathlib.Path(binary)
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-bench-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data").start()
    try:
        admin = bootstrap_admin(daemon)
        iid = admin.create("bench")["id"]
        time.sleep(1)   # let the freshly started daemon settle before reading its idle RSS
        idle = rss_kib(daemon.proc.pid)
        cookie = admin.http.cookies.get("claworc_session")
        times, running_rss = [], []
        for _ in range(runs):
            t0 = time.monotonic()
            r = admin.post(f"/api/v1/instances/{iid}/start")
            assert r.status_code == 200, r.text

            def connect():
                return RFBClient(daemon.base_url, iid, cookie)
            until_chromium_visible(connect)
            times.append(time.monotonic() - t0)
            running_rss.append(rss_kib(daemon.proc.pid))
            assert admin.post(f"/api/v1/instances/{iid}/stop").json()["state"] == "stopped"
        return times, idle, running_rss
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def bare_runs(runs):
    times = []
    for _ in range(runs):
        profile = tempfile.mkdtemp(prefix="bench-profile-")
        env = dict(os.environ, DISPLAY=":97", HOME=profile)
        procs = []
        t0 = time.monotonic()
        try:
            r, w = os.pipe()
            procs.append(subprocess.Popen(["Xvfb", ":97", "-screen", "0", "1280x800x24", "-nolisten", "tcp",
                                           "-displayfd", str(w)], pass_fds=(w,), stderr=subprocess.DEVNULL))
            os.close(w)
            os.read(r, 16)   # the display is ready
            procs.append(subprocess.Popen(["x11vnc", "-display", ":97", "-rfbport", "5997", "-localhost", "-forever",
                                           "-shared", "-nopw", "-quiet"], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            procs.append(subprocess.Popen(["/usr/lib/chromium/chromium", f"--user-data-dir={profile}/chrome",
                                           "--no-first-run", "--no-default-browser-check", "--password-store=basic",
                                           "--disable-component-update", "--ozone-platform=x11", "--no-sandbox",
                                           "--window-position=0,0", "--window-size=1280,800", "about:blank"],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            until_chromium_visible(lambda: TCPRFBClient("127.0.0.1", 5997))
            times.append(time.monotonic() - t0)
        finally:
            for p in reversed(procs):
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            shutil.rmtree(profile, ignore_errors=True)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build" / "release" / "claworc"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    claworc, idle, running = claworc_runs(args.binary, args.runs)
    bare = bare_runs(args.runs)
    mc, mb = statistics.median(claworc), statistics.median(bare)
    print(f"binary: {args.binary} ({os.path.getsize(args.binary) / 2**20:.2f} MiB)")
    print(f"start -> VNC shows Chromium, {args.runs} runs each (seconds):")
    print(f"  claworc (sandboxed, via daemon WebSocket): median {mc:.3f}  runs {' '.join(f'{t:.3f}' for t in claworc)}")
    print(f"  bare host processes (no sandbox, TCP):     median {mb:.3f}  runs {' '.join(f'{t:.3f}' for t in bare)}")
    print(f"  ratio claworc/bare: {mc / mb:.2f}")
    print(f"daemon VmRSS: idle {idle / 1024:.1f} MiB, with one running instance median "
          f"{statistics.median(running) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
