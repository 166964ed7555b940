#!/usr/bin/env python3
"""The daemon's VNC relay against websockify, relaying the same x11vnc of one running instance.

Paths, all to the instance's x11vnc (127.0.0.1:5900 inside the instance's network namespace):
- claworc:    RFB over the daemon's WebSocket (/api/v1/instances/{id}/vnc, on host loopback);
              the daemon relays to a socket the instance's init connected inside the netns.
- websockify: Debian's websockify (the peer; noVNC's own relay), run by this benchmark inside
              the instance's network namespace only (`nsenter --net`, as root, listening on
              that namespace's 127.0.0.1:6080) and pointed at 127.0.0.1:5900 there. Its
              viewers create their sockets from inside the same namespace (setns(CLONE_NEWNET)
              in the viewer process, then connect), so nothing is exposed on the host and no
              port of the instance is opened to anything but this benchmark.
- direct:     plain TCP to x11vnc from inside the namespace, for the floor both relays add to.

Measures, per path:
- one viewer: relay throughput (full raw frames requested back to back for --seconds; bytes
  of RFB per second) and latency (a 1x1 non-incremental update: request -> answer, median and
  p99 of --pings); "added" latency is the path's median minus the direct path's.
- --viewers (20) concurrent viewers, one process each, all asking for full frames for
  --seconds: aggregate throughput, per-request latency median/p99 over all viewers, and the
  relay's CPU (user+system seconds per second of wall time: the daemon process alone, its
  children being the instance; websockify with every fork, live or reaped) and memory (max
  sampled PSS, summed over websockify's forks so shared pages count once).

Usage (root): bench/vnc_relay.py [--binary .build/release/claworc] [--viewers 20] [--seconds 5]
Traffic stays on loopback and inside the instance's own network namespace.
"""
import argparse
import ctypes
import multiprocessing
import os
import pathlib
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

import websocket

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "Tests" / "harness"), str(ROOT / "bench")]
from claworc_harness import Daemon, bootstrap_admin  # noqa: E402
from start_to_vnc import instance_init_pid  # noqa: E402

CLONE_NEWNET = 0x40000000
WEBSOCKIFY_PORT = 6080
VNC_PORT = 5900


def enter_netns(init_pid):
    """Moves the calling thread (the whole process when it has one thread) into the instance's netns."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


class Stream:
    """RFB bytes from a WebSocket or a TCP socket, with just the reading a benchmark needs."""

    def __init__(self, path, target):
        self.buf = bytearray()
        self.ws = self.sock = None
        if path == "claworc":
            url, cookie = target
            self.ws = websocket.create_connection(url, header=[f"Cookie: claworc_session={cookie}"], timeout=30)
        else:
            sock = socket.create_connection(("127.0.0.1", WEBSOCKIFY_PORT if path == "websockify" else VNC_PORT), 30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if path == "websockify":
                self.ws = websocket.create_connection(f"ws://127.0.0.1:{WEBSOCKIFY_PORT}/", socket=sock,
                                                      subprotocols=["binary"], timeout=30)
            else:
                self.sock = sock

    def _fill(self):
        if self.ws is not None:
            _, data = self.ws.recv_data()
        else:
            data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def skip(self, n):
        while n > 0:
            if not self.buf:
                self._fill()
            k = min(n, len(self.buf))
            del self.buf[:k]
            n -= k

    def send(self, data):
        if self.ws is not None:
            self.ws.send(data, opcode=websocket.ABNF.OPCODE_BINARY)
        else:
            self.sock.sendall(data)

    def handshake(self):
        assert self.read(12).startswith(b"RFB 003.")
        self.send(b"RFB 003.008\n")
        (count,) = struct.unpack("B", self.read(1))
        assert 1 in self.read(count)
        self.send(b"\x01")
        assert struct.unpack(">I", self.read(4))[0] == 0
        self.send(b"\x01")
        self.width, self.height = struct.unpack(">HH", self.read(4))
        self.bpp = self.read(16)[0] // 8
        (n,) = struct.unpack(">I", self.read(4))
        self.read(n)
        self.send(struct.pack(">BxHi", 2, 1, 0))   # raw only: the bytes are the screen's
        return self

    def update(self, w=None, h=None):
        """One non-incremental update of the top-left w x h; returns the RFB bytes received."""
        w, h = w or self.width, h or self.height
        self.send(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
        total = 0
        while True:
            kind = self.read(1)[0]
            if kind == 0:
                break
            if kind == 2:
                total += 1
                continue
            if kind == 3:
                self.read(3)
                (n,) = struct.unpack(">I", self.read(4))
                self.skip(n)
                total += 8 + n
                continue
            raise AssertionError(f"unexpected server message {kind}")
        self.read(1)
        (rects,) = struct.unpack(">H", self.read(2))
        total += 4
        for _ in range(rects):
            _, _, rw, rh, enc = struct.unpack(">HHHHi", self.read(12))
            assert enc == 0, enc
            self.skip(rw * rh * self.bpp)
            total += 12 + rw * rh * self.bpp
        return total

    def close(self):
        (self.ws or self.sock).close()


def connect(path, target, init_pid):
    if path != "claworc":
        enter_netns(init_pid)
    return Stream(path, target).handshake()


def viewer(path, target, init_pid, seconds, start_at, out):
    """One process: full frames back to back from `start_at` for `seconds`; (bytes, latencies)."""
    s = connect(path, target, init_pid)
    s.update()   # warm: the first answer of a fresh client is not a relay's
    while time.time() < start_at:
        time.sleep(0.005)
    end = start_at + seconds
    got, lat = 0, []
    while time.time() < end:
        t = time.perf_counter()
        got += s.update()
        lat.append(time.perf_counter() - t)
    s.close()
    out.put((got, lat))


def single(path, target, init_pid, seconds, pings, out):
    s = connect(path, target, init_pid)
    s.update()
    lat = []
    for _ in range(pings):
        t = time.perf_counter()
        s.update(1, 1)
        lat.append(time.perf_counter() - t)
    t0, got = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        got += s.update()
    rate = got / (time.perf_counter() - t0)
    s.close()
    out.put((rate, lat))


def port_open(init_pid, port, out):
    enter_netns(init_pid)
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        out.put(True)
    except OSError:
        out.put(False)


def in_process(fn, *args):
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=fn, args=(*args, q))
    p.start()
    result = q.get(timeout=300)
    p.join(30)
    return result


def tree(pid):
    """pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = pathlib.Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def cpu_seconds(pids):
    """User+system seconds of `pids`, each with its reaped children's (a connection websockify
    forked and already reaped counts; a live process's time is in nobody's child totals)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            f = pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15]) / tick
        except OSError:
            pass
    return total


def pss_mib(pids):
    """Proportional set size summed: forks sharing pages are not counted once each."""
    total = 0
    for p in pids:
        try:
            for line in pathlib.Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def concurrent(path, target, init_pid, relay_pids, viewers, seconds):
    q = multiprocessing.Queue()
    start_at = time.time() + 3 + 0.15 * viewers   # every viewer connected and warm before
    procs = [multiprocessing.Process(target=viewer, args=(path, target, init_pid, seconds, start_at, q))
             for _ in range(viewers)]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.01)
    cpu0, peak = cpu_seconds(relay_pids()), 0.0
    while time.time() < start_at + seconds:
        peak = max(peak, pss_mib(relay_pids()))
        time.sleep(0.25)
    cpu = (cpu_seconds(relay_pids()) - cpu0) / seconds
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    got = sum(r[0] for r in results)
    lat = sorted(x for r in results for x in r[1])
    return got / seconds, lat, cpu, peak


def pct(values, p):
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build" / "release" / "claworc"))
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--pings", type=int, default=200)
    args = ap.parse_args()
    if not shutil.which("websockify"):
        sys.exit("websockify is not installed (scripts/install-deps.sh bench); the peer cannot run")
    import claworc_harness
    claworc_harness.BINARY = pathlib.Path(args.binary)
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-relay-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data").start()
    wsfy = None
    try:
        admin = bootstrap_admin(daemon)
        iid = admin.create("relay")["id"]
        assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
        admin.wait_all_services_ready(iid)
        init = instance_init_pid(daemon)
        cookie = admin.http.cookies.get("claworc_session")
        url = daemon.base_url.replace("http://", "ws://") + f"/api/v1/instances/{iid}/vnc"
        wsfy = subprocess.Popen(["nsenter", f"--net=/proc/{init}/ns/net", "websockify",
                                 f"127.0.0.1:{WEBSOCKIFY_PORT}", f"127.0.0.1:{VNC_PORT}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not in_process(port_open, init, WEBSOCKIFY_PORT):   # asked from inside the namespace
            if time.monotonic() > deadline or wsfy.poll() is not None:
                raise RuntimeError("websockify did not listen in the instance's namespace")
            time.sleep(0.1)
        target = (url, cookie)
        size = connect("claworc", target, init)
        print(f"binary: {args.binary}; screen {size.width}x{size.height}, {size.bpp * 8} bpp raw; "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        size.close()
        print(f"one viewer ({args.seconds:g} s of full frames; {args.pings} 1x1 updates for latency):")
        base_lat = None
        for path in ("direct", "claworc", "websockify"):
            rate, lat = in_process(single, path, target, init, args.seconds, args.pings)
            lat.sort()
            med = statistics.median(lat)
            base_lat = med if path == "direct" else base_lat
            added = "" if path == "direct" else f"  added {1000 * (med - base_lat):+.2f} ms"
            print(f"  {path:10s} {rate / 2**20:8.1f} MiB/s   latency median {1000 * med:6.2f} ms  "
                  f"p99 {1000 * pct(lat, 0.99):6.2f} ms{added}")
        print(f"{args.viewers} concurrent viewers, full frames for {args.seconds:g} s:")
        rows = {}
        # The daemon alone (its children are the instance); websockify with its per-connection forks.
        relays = {"claworc": lambda: [daemon.proc.pid], "websockify": lambda: tree(wsfy.pid)}
        for path in ("claworc", "websockify"):
            rows[path] = concurrent(path, target, init, relays[path], args.viewers, args.seconds)
            rate, lat, cpu, rss = rows[path]
            print(f"  {path:10s} aggregate {rate / 2**20:8.1f} MiB/s   per-request latency median "
                  f"{1000 * statistics.median(lat):7.1f} ms  p99 {1000 * pct(lat, 0.99):7.1f} ms   "
                  f"relay CPU {cpu:.2f} s/s   relay PSS max {rss:.1f} MiB")
        c, w = rows["claworc"], rows["websockify"]
        print(f"  ratio claworc/websockify: throughput {c[0] / w[0]:.2f}, latency median "
              f"{statistics.median(c[1]) / statistics.median(w[1]):.2f}, CPU {c[2] / w[2]:.2f}")
    finally:
        if wsfy is not None:
            wsfy.terminate()
            try:
                wsfy.wait(10)
            except subprocess.TimeoutExpired:
                wsfy.kill()
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
