#!/usr/bin/env python3
"""The LLM key proxy's overhead against calling the provider directly (loopback only).

The provider is the fake (Tests/standins/fake_llm.py, its own process) on the host's loopback, streaming an
OpenAI chat completion (`stream: true`, include_usage): 13 SSE events, no delay between them.
The same client makes the same requests two ways:
- direct: from the host to the fake, 127.0.0.1:<port>/v1/chat/completions;
- through the proxy: from inside a running instance's network namespace (the client process
  joins it with setns, as root of the host) to 127.0.0.1:8399/providers/fake/chat/completions,
  with the instance's credential. That is the agent's path exactly: the init's listening
  socket, accepted by the daemon, the credential and budget checks, the key swap, a new
  upstream connection, the stream passed back chunk by chunk and its usage recorded before the
  answer's end. Only the client is not uid 1000 (the exec API's 32 KiB output cap and its
  process start would be measured with it otherwise).

Measured per request: time to the first streamed byte of the body (the head and the first
event) and the whole request; at 1 stream and at 50 concurrent streams (each stream a fresh
connection, one request after the other per client, for --seconds). Printed: median and p99
of both, direct and proxied, the added latency and the ratio.

Usage (root): bench/llm_proxy.py [--binary .build/release/claworc] [--seconds 8]
"""
import argparse
import ctypes
import hashlib
import hmac
import json
import os
import pathlib
import shutil
import socket
import subprocess
import statistics
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "Tests" / "harness"), str(ROOT / "Tests" / "standins")]
import claworc_harness  # noqa: E402
from claworc_harness import Daemon, bootstrap_admin, init_pid  # noqa: E402

KEY = "sk-bench-" + "k" * 32
CLONE_NEWNET = 0x40000000


def request_bytes(path, host, auth):
    body = json.dumps({"model": "bench-model", "stream": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": "measure the proxy please"}]}).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {auth}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


def one(port, payload):
    """(time to first body byte, total) in ms; reads to EOF (Connection: close)."""
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(payload)
    buf = b""
    first = None
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        if first is None and b"\r\n\r\n" in buf and b"data:" in buf:
            first = time.perf_counter()
    s.close()
    total = time.perf_counter()
    assert buf.startswith(b"HTTP/1.1 200") and b"[DONE]" in buf, buf[:300]
    return (first - t0) * 1000, (total - t0) * 1000


def run(port, payload, clients, seconds, netns_fd=None):
    results = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker():
        if netns_fd is not None:
            # setns applies to the calling thread only: each worker joins the instance's netns.
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(netns_fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        mine = []
        while time.monotonic() < stop:
            mine.append(one(port, payload))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def summary(rows):
    ttfb = [r[0] for r in rows]
    total = [r[1] for r in rows]
    return {"n": len(rows), "ttfb_median": statistics.median(ttfb), "ttfb_p99": pct(ttfb, 0.99),
            "total_median": statistics.median(total), "total_p99": pct(total, 0.99)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.environ.get("CLAWORC_BIN"))
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    if args.binary:
        claworc_harness.BINARY = pathlib.Path(args.binary).resolve()
    print(f"binary: {claworc_harness.BINARY}")
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-bench-"))
    base.chmod(0o711)
    # Its own process: in this one it would share the GIL with the 50 client threads.
    # A listen backlog of 512 (socketserver's default is 5): 50 clients opening connections at
    # once would otherwise measure SYN retransmits of the direct path.
    start_fake = ("import http.server, sys; http.server.ThreadingHTTPServer.request_queue_size = 512; "
                  f"sys.path.insert(0, {str(ROOT / 'Tests' / 'standins')!r}); import fake_llm; "
                  f"sys.argv = ['fake_llm', '--port', '0', '--key', {KEY!r}]; fake_llm.main()")
    llm = subprocess.Popen([sys.executable, "-c", start_fake], stdout=subprocess.PIPE, text=True)
    llm_url = llm.stdout.readline().split()[-1]
    daemon = Daemon(base / "data", ["--instance-services", "none"]).start()
    try:
        admin = bootstrap_admin(daemon)
        r = admin.http.put(admin.url("/api/v1/providers/fake"), json={"api": "openai-completions", "base_url": llm_url + "/v1",
                                                                       "api_key": KEY, "models": ["bench-model"]}, timeout=30)
        assert r.status_code == 200, r.text
        iid = admin.create("bench-proxy")["id"]
        assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
        secret = (daemon.data_dir / "secrets.key").read_bytes()
        cred = "cwp_" + hmac.new(secret, f"llm-proxy:{iid}".encode(), hashlib.sha256).hexdigest()
        netns = os.open(f"/proc/{init_pid(daemon, 'bench-proxy')}/ns/net", os.O_RDONLY)
        fake_port = int(llm_url.rsplit(":", 1)[1])
        direct = request_bytes("/v1/chat/completions", f"127.0.0.1:{fake_port}", KEY)
        proxied = request_bytes("/providers/fake/chat/completions", "127.0.0.1:8399", cred)
        # Warm up both paths (first connections, the daemon's first planning).
        run(fake_port, direct, 4, 1)
        run(8399, proxied, 4, 1, netns)
        out = {}
        for clients in (1, 50):
            d = summary(run(fake_port, direct, clients, args.seconds))
            p = summary(run(8399, proxied, clients, args.seconds, netns))
            out[clients] = (d, p)
            print(f"\n{clients} concurrent stream(s), {args.seconds:g} s each: direct n={d['n']}, proxied n={p['n']}")
            print(f"  {'':22}{'direct':>10}{'proxied':>10}{'added':>10}{'ratio':>8}")
            for key, label in (("ttfb_median", "first byte, median"), ("ttfb_p99", "first byte, p99"),
                               ("total_median", "whole stream, median"), ("total_p99", "whole stream, p99")):
                print(f"  {label:22}{d[key]:>9.2f} {p[key]:>9.2f} {p[key] - d[key]:>9.2f} {p[key] / d[key]:>7.2f}x")
        usage = admin.get(f"/api/v1/instances/{iid}/usage").json()["usage"]
        print(f"\nusage recorded: {sum(u['requests'] for u in usage)} proxied requests, "
              f"{sum(u['input_tokens'] + u['output_tokens'] for u in usage)} tokens")
        print(json.dumps({str(k): {"direct": v[0], "proxied": v[1]} for k, v in out.items()}))
    finally:
        daemon.stop()
        llm.terminate()
        llm.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
