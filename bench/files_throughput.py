#!/usr/bin/env python3
"""Throughput of the files API against a plain local copy of the same file.

Claworc: one instance's home through a real daemon on loopback, a --size MB file of random
bytes uploaded with PUT /api/v1/instances/{id}/files/content?path=P (streamed in 1 MiB
writes; the daemon writes an O_TMPFILE, fsyncs it and links it in) and downloaded with GET
(read in 1 MiB parts and dropped). Peers on the same filesystem, same file, warm page cache:
download: `cat FILE > /dev/null` and `dd if=FILE of=/dev/null bs=1M`; upload: `dd if=FILE
of=COPY bs=1M conv=fsync` (the API fsyncs too) and plain `cat FILE > COPY`.

Also printed: the daemon's CPU time (utime + stime) per transfer, which a loaded machine
disturbs far less than the rates.

Usage (root): bench/files_throughput.py [--binary .build/release/claworc] [--size 200] [--runs 5]
Traffic stays on loopback.
"""
import argparse
import http.client
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "Tests" / "harness")]
import claworc_harness  # noqa: E402
from claworc_harness import Daemon, bootstrap_admin  # noqa: E402

MiB = 1 << 20


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def upload(port, cookie, url, source, size):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300, blocksize=MiB)
    with open(source, "rb") as body:
        conn.request("PUT", url, body=body, headers={"Cookie": cookie, "Content-Length": str(size),
                                                     "Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        r.read()
    conn.close()
    assert r.status == 201, r.status


def download(port, cookie, url, size):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("GET", url, headers={"Cookie": cookie})
    r = conn.getresponse()
    assert r.status == 200, r.status
    buf = bytearray(MiB)
    view = memoryview(buf)
    total = 0
    while True:
        n = r.readinto(view)
        if not n:
            break
        total += n
    conn.close()
    assert total == size, (total, size)


def cpu_seconds(pid):
    """utime + stime of a process, in seconds: its CPU cost, whatever else loads the machine."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shell(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build" / "release" / "claworc"))
    ap.add_argument("--size", type=int, default=200, help="MB (MiB) of the file")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    claworc_harness.BINARY = pathlib.Path(args.binary)
    size = args.size * MiB
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-bench-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data").start()
    try:
        admin = bootstrap_admin(daemon)
        iid = admin.create("files")["id"]
        cookie = "claworc_session=" + admin.http.cookies.get("claworc_session")
        source = base / "source.bin"
        with open(source, "wb") as f:
            for _ in range(args.size):
                f.write(os.urandom(MiB))
        copy = base / "copy.bin"
        url = f"/api/v1/instances/{iid}/files/content?path=" + urllib.parse.quote("/big.bin", safe="")
        stored = daemon.data_dir / "instances" / str(iid) / "home" / "big.bin"
        rates = {k: [] for k in ("api upload", "dd upload (conv=fsync)", "cat upload (no fsync)",
                                 "api download", "cat download", "dd download")}
        src, dst = str(source), str(copy)
        cpu = {"api upload": [], "api download": []}
        for _ in range(args.runs):
            c0 = cpu_seconds(daemon.proc.pid)
            rates["api upload"].append(size / MiB / timed(lambda: upload(daemon.port, cookie, url, source, size)))
            c1 = cpu_seconds(daemon.proc.pid)
            cpu["api upload"].append(c1 - c0)
            assert stored.stat().st_size == size
            rates["dd upload (conv=fsync)"].append(size / MiB / timed(lambda: shell(f"dd if={src} of={dst} bs=1M conv=fsync")))
            os.unlink(copy)
            rates["cat upload (no fsync)"].append(size / MiB / timed(lambda: shell(f"cat {src} > {dst}")))
            os.unlink(copy)
            c0 = cpu_seconds(daemon.proc.pid)
            rates["api download"].append(size / MiB / timed(lambda: download(daemon.port, cookie, url, size)))
            cpu["api download"].append(cpu_seconds(daemon.proc.pid) - c0)
            rates["cat download"].append(size / MiB / timed(lambda: shell(f"cat {stored} > /dev/null")))
            rates["dd download"].append(size / MiB / timed(lambda: shell(f"dd if={stored} of=/dev/null bs=1M")))
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"files API throughput, {args.size} MiB file, {args.runs} runs each (median MiB/s)")
        for k, v in med.items():
            print(f"  {k:<26} {v:8.0f}   runs {' '.join(f'{x:.0f}' for x in rates[k])}")
        for k, v in cpu.items():
            print(f"  daemon CPU per {k:<13} {statistics.median(v) * 1000:6.0f} ms = "
                  f"{statistics.median(v) * 1000 / args.size:.2f} ms/MiB   runs {' '.join(f'{x * 1000:.0f}' for x in v)}")
        print(f"  ratio api / dd upload (conv=fsync): {med['api upload'] / med['dd upload (conv=fsync)']:.2f}")
        print(f"  ratio api / cat download:           {med['api download'] / med['cat download']:.2f}")
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
