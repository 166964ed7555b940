#!/usr/bin/env python3
"""Keystroke round trip through the instance terminal, side by side with a local pty.

claworc: one byte sent on the terminal WebSocket (`WS /api/v1/instances/{id}/terminal`) to
`cat` running in the shell of a real instance (daemon -> control-socket-passed pty master ->
pty line discipline echo and cat's copy), timed until the byte comes back on the WebSocket.
Peer: the same program (`cat` under `sh`) on a pty of this host opened by Python's pty module,
one byte written to the master and read back, with no Claworc in between.
Both: the pty in raw mode without echo (`stty raw -echo`), so exactly one byte comes back per
keystroke: cat's copy. Prints median and p99 of both and the ratio.

Usage (root): bench/terminal_rtt.py [--binary .build/release/claworc] [--keys 500]
"""
import argparse
import json
import os
import pathlib
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "harness"))

import websocket  # noqa: E402

KEYS = b"abcdefghijklmnopqrstuvwxyz0123456789"


def stats(samples):
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, len(s) * 99 // 100)]


def local_pty(keys):
    pid, master = pty.fork()
    if pid == 0:
        os.execvp("sh", ["sh", "-c", "stty raw -echo; echo READY; exec cat"])
    buf = b""
    while b"READY" not in buf:
        buf += os.read(master, 4096)
    times = []
    for i in range(keys):
        key = KEYS[i % len(KEYS):][:1]
        t0 = time.perf_counter_ns()
        os.write(master, key)
        got = b""
        while key not in got:
            select.select([master], [], [])
            got += os.read(master, 4096)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    os.close(master)
    return times


def claworc(binary, keys):
    os.environ["CLAWORC_BIN"] = binary
    import claworc_harness as harness   # reads CLAWORC_BIN at import
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-bench-"))
    base.chmod(0o711)
    daemon = harness.Daemon(base / "data", extra_args=["--instance-services", "none"]).start()
    try:
        admin = harness.bootstrap_admin(daemon)
        iid = admin.create("rtt")["id"]
        assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
        admin.wait_for(iid, lambda i: i["state"] == "running", what="running")
        url = daemon.base_url.replace("http://", "ws://") + f"/api/v1/instances/{iid}/terminal"
        ws = websocket.create_connection(url, cookie=f"claworc_session={admin.http.cookies.get('claworc_session')}",
                                         timeout=30)
        ws.sock.setsockopt(__import__("socket").IPPROTO_TCP, __import__("socket").TCP_NODELAY, 1)
        assert json.loads(ws.recv())["type"] == "session"
        ws.send_binary(b"stty raw -echo; echo RE''ADY; exec cat\n")
        buf = b""
        while b"READY" not in buf:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_BINARY:
                buf += data
        times = []
        for i in range(keys):
            key = KEYS[i % len(KEYS):][:1]
            t0 = time.perf_counter_ns()
            ws.send_binary(key)
            got = b""
            while key not in got:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    got += data
            times.append((time.perf_counter_ns() - t0) / 1e6)
        ws.close()
        admin.post(f"/api/v1/instances/{iid}/stop")
        return times
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build" / "release" / "claworc"))
    ap.add_argument("--keys", type=int, default=500)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the daemon creates namespaces)")
    local = local_pty(args.keys)
    ours = claworc(args.binary, args.keys)
    lm, lp = stats(local)
    cm, cp = stats(ours)
    print(f"keystroke round trip, {args.keys} keystrokes, cat on a raw pty")
    print(f"  local pty (python pty, no Claworc):   median {lm:.3f} ms  p99 {lp:.3f} ms")
    print(f"  claworc terminal WebSocket:           median {cm:.3f} ms  p99 {cp:.3f} ms")
    print(f"  ratio claworc / local:                median {cm / lm:.1f}x  p99 {cp / lp:.1f}x")


if __name__ == "__main__":
    main()
