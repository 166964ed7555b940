#!/usr/bin/env python3
"""Time from "start instance" to the VNC stream showing Chromium, and the daemon's memory.

Claworc: POST /api/v1/instances/{id}/start, then RFB over the daemon's WebSocket until a frame
shows Chromium painted (>= 16 distinct colours: its tab strip, toolbar and text; fewer are
reached before Chromium paints, see bench/xwatch.py). Peer, run side by side on the same
machine: the same three programs (Xvfb, x11vnc, Chromium with a fresh profile) started directly on the host with
no sandbox, polled over plain TCP the same way; the ratio is the cost of the sandbox path. A
second peer runs x11vnc with its defaults instead of the service's options (what they save).

Usage (root): bench/start_to_vnc.py [--binary .build/release/claworc] [--runs 5]
Traffic stays on loopback and inside the instance's own network namespace.
"""
import argparse
import datetime
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

import websocket

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "Tests" / "harness"), str(ROOT / "Tests" / "integration"), str(ROOT / "bench")]
from claworc_harness import Daemon, bootstrap_admin, host_pids, read_proc  # noqa: E402
from rfb import RFBClient, TCPRFBClient  # noqa: E402
from xwatch import PAINTED_COLOURS, ScreenWatcher  # noqa: E402


def until_chromium_visible(connect, deadline_s=90):
    """Connects (again and again until the VNC server answers), then asks for frames the way a
    viewer does (one full frame, then incremental updates) until one shows Chromium."""
    start_deadline = time.monotonic() + deadline_s
    while time.monotonic() < start_deadline:
        try:
            rfb = connect().handshake()
        except (OSError, ConnectionError, AssertionError, websocket.WebSocketException):
            time.sleep(0.02)
            continue
        try:
            fb = rfb.frame()
            while time.monotonic() < start_deadline:
                if rfb.distinct_colours(fb) >= PAINTED_COLOURS:
                    return
                fb = rfb.frame(incremental=True)
        except (OSError, ConnectionError, websocket.WebSocketException):
            time.sleep(0.02)
        finally:
            rfb.close()
    raise TimeoutError("Chromium never became visible")


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def instance_init_pid(daemon):
    """The host pid of the daemon's (only) running instance's init, once it exists."""
    for pid in host_pids():
        status, cmdline = read_proc(pid, "status"), read_proc(pid, "cmdline")
        if status and cmdline and cmdline.startswith(b"claworc-init\0__init") \
                and f"PPid:\t{daemon.proc.pid}\n".encode() in status:
            return pid
    return None


def service_times(admin, iid, wall0):
    """Seconds from `wall0` to each service's last "starting" and "ready" note in its log."""
    out = {}
    for name in ("xvfb", "vnc", "chromium"):
        lines = admin.get(f"/api/v1/instances/{iid}/logs?service={name}&tail=500").json()["lines"]
        for line in lines:
            if line["stream"] != "init":
                continue
            at = datetime.datetime.fromisoformat(line["ts"].replace("Z", "+00:00")).timestamp()
            if at < wall0:
                continue
            for word in ("starting", "ready"):
                if line["text"].startswith(word + " "):
                    out[f"{name} {word}"] = at - wall0
    return out


STAGES = [("launch done", "launch"), ("Xvfb ready", "xvfb ready"), ("VNC server started", "vnc starting"),
          ("VNC server ready", "vnc ready"), ("Chromium started", "chromium starting"),
          ("window mapped", "mapped"), ("first painted", "painted"), ("first RFB frame with Chromium", "rfb"),
          ("Chromium DevTools ready", "chromium ready")]


def claworc_runs(binary, runs, watch=True):
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
        timelines, running_rss = [], []
        for _ in range(runs):
            wall0, t0 = time.time(), time.monotonic()
            r = admin.post(f"/api/v1/instances/{iid}/start")
            assert r.status_code == 200, r.text
            stages = {"launch": time.monotonic() - t0}
            init = instance_init_pid(daemon)
            assert init, "no init process for the started instance"
            watcher = ScreenWatcher(f"/proc/{init}/root/tmp/.X11-unix/X0") if watch else None
            if watcher:
                watcher.start()

            def connect():
                return RFBClient(daemon.base_url, iid, cookie)
            until_chromium_visible(connect)
            stages["rfb"] = time.monotonic() - t0
            if watcher:
                watcher.join()
                stages["mapped"] = watcher.mapped - t0 if watcher.mapped else None
                stages["painted"] = watcher.painted - t0 if watcher.painted else None
            admin.wait_all_services_ready(iid)
            stages.update(service_times(admin, iid, wall0))
            timelines.append(stages)
            running_rss.append(rss_kib(daemon.proc.pid))
            assert admin.post(f"/api/v1/instances/{iid}/stop").json()["state"] == "stopped"
        return timelines, idle, running_rss
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


# ServiceCatalog.vncArguments after the display and port (Sources/Supervisor/ServiceSpec.swift).
X11VNC_BASE = ["-localhost", "-forever", "-shared", "-nopw", "-quiet"]
X11VNC_TUNING = X11VNC_BASE + ["-nonap", "-speeds", "lan", "-threads", "-wait", "10", "-defer", "10"]


def bare_runs(runs, x11vnc_options):
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
            procs.append(subprocess.Popen(["x11vnc", "-display", ":97", "-rfbport", "5997", *x11vnc_options],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
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
    ap.add_argument("--no-xwatch", action="store_true",
                    help="do not watch the X display (window mapped, first painted): its polling costs CPU")
    args = ap.parse_args()
    timelines, idle, running = claworc_runs(args.binary, args.runs, watch=not args.no_xwatch)
    claworc = [t["rfb"] for t in timelines]
    bare = bare_runs(args.runs, X11VNC_TUNING)
    untuned = bare_runs(args.runs, X11VNC_BASE)
    mc, mb, mu = statistics.median(claworc), statistics.median(bare), statistics.median(untuned)
    print(f"binary: {args.binary} ({os.path.getsize(args.binary) / 2**20:.2f} MiB)")
    print(f"start -> VNC shows Chromium, {args.runs} runs each (seconds):")
    print(f"  claworc (sandboxed, via daemon WebSocket): median {mc:.3f}  runs {' '.join(f'{t:.3f}' for t in claworc)}")
    print(f"  bare host processes (no sandbox, TCP):     median {mb:.3f}  runs {' '.join(f'{t:.3f}' for t in bare)}")
    print(f"  bare, x11vnc with its defaults:            median {mu:.3f}  runs {' '.join(f'{t:.3f}' for t in untuned)}")
    print(f"  ratio claworc/bare: {mc / mb:.2f}; bare tuned/defaults: {mb / mu:.2f}")
    print("claworc timeline, seconds after the start request (median of the runs; per run):")
    for label, key in STAGES:
        values = [t.get(key) for t in timelines]
        seen = [v for v in values if v is not None]
        med = f"{statistics.median(seen):6.3f}" if seen else "   n/a"
        print(f"  {label:31s} {med}   {' '.join('  n/a' if v is None else f'{v:.3f}' for v in values)}")
    print(f"daemon VmRSS: idle {idle / 1024:.1f} MiB, with one running instance median "
          f"{statistics.median(running) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
