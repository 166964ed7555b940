#!/usr/bin/env python3
"""Authentication under load, against the daemon's own floor (loopback only).

1. Login: 50 concurrent clients, each POSTing /api/v1/auth/login (bcrypt cost 12 on
   PasswordPool) in a loop; latency of the successful ones, and how many were refused 503
   `busy` (the pool admits one check per CPU plus 32 waiting; a refused client waits its
   Retry-After). Each client is its own account from its own loopback address (127.0.1.N):
   LoginThrottle counts an attempt in flight as a failure until it succeeds, so 50 parallel
   logins of one account from one address would measure the throttle, not the login.
   Peer: /healthz under the same 50 clients.
2. Passkey sign-in: the same 50 clients, each with its own account and ES256 passkey (a
   software authenticator, Tests/harness/soft_authenticator.py), each ceremony two requests:
   login/options (a challenge bound to a pre-login cookie), then login with the signed
   assertion; latency of the whole ceremony (the client's signing, ~0.1 ms, included).
   Peer: the password login above (the same sign-in, by bcrypt).
3. Authenticated `GET /api/v1/instances` with 30 created instances (stopped: created is
   enough), 200 concurrent keep-alive clients, cookie session: each request resolves the
   session in SQLite, lists the instances and encodes them. Peer: /healthz under the same 200
   clients (no session, no database): the floor of the HTTP stack and of this client.

The client is one asyncio loop of raw HTTP/1.1 keep-alive connections, the same for the
measured route and its peer, so the ratio is the route's own cost.

Usage (root): bench/auth_load.py [--binary .build/release/claworc] [--seconds 10]
"""
import argparse
import asyncio
import json
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "Tests" / "harness")]
import claworc_harness  # noqa: E402
from claworc_harness import Client, Daemon, bootstrap_admin  # noqa: E402

PASSWORD = "a-good-password"


async def passkey_load(port, keys, seconds):
    """Each client i signs in with keys[i] over and over: options, sign, login."""
    from soft_authenticator import assertion
    by_status = {}
    stop = time.monotonic() + seconds
    origin, host = f"http://localhost:{port}", f"localhost:{port}"

    async def one(i):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.1.{i + 1}", 0))
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                head = f"POST /api/v1/auth/passkeys/login/options HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
                status, headers, payload = await request(reader, writer, head.encode())
                if status != 200:
                    by_status.setdefault(status, []).append(time.perf_counter() - t0)
                    await asyncio.sleep(min(float(headers.get("retry-after", "1")), max(0.0, stop - time.monotonic())))
                    continue
                cookie = headers["set-cookie"].split(";")[0]
                challenge = json.loads(payload)["publicKey"]["challenge"]
                body = json.dumps({"credential": assertion(keys[i], challenge, origin, "localhost", None)}).encode()
                head = (f"POST /api/v1/auth/passkeys/login HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
                status, headers, _ = await request(reader, writer, head.encode(), body)
                by_status.setdefault(status, []).append(time.perf_counter() - t0)
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(len(keys))))
    return by_status, time.monotonic() - started


def register_passkeys(daemon, count):
    """A passkey for each loader account, registered through the API as the dashboard would."""
    from soft_authenticator import SoftKey, registration
    keys = []
    for i in range(count):
        c = Client(daemon)
        c.http.headers["Host"] = f"localhost:{daemon.port}"
        c.login(f"loader{i}", PASSWORD)
        c.http.headers["Origin"] = f"http://localhost:{daemon.port}"
        c.url = lambda path, c=c: daemon.base_url + path
        options = c.post("/api/v1/auth/passkeys/register/options").json()["publicKey"]
        key = SoftKey()
        r = c.post("/api/v1/auth/passkeys/register", {"name": "bench", "credential": registration(
            key, options["challenge"], f"http://localhost:{daemon.port}", "localhost")})
        assert r.status_code == 201, r.text
        keys.append(key)
    return keys


async def request(reader, writer, head, body=b""):
    """One request on a keep-alive connection: (status, headers, body)."""
    writer.write(head + body)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    payload = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, payload


def http_head(method, path, port, extra="", length=None):
    text = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}"
    if length is not None:
        text += f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
    return (text + "\r\n").encode()


async def load(port, clients, seconds, head, body=b""):
    """`clients` keep-alive connections, client i from 127.0.1.i, sending head(i)+body(i)
    until `seconds` pass; latencies (s) by status."""
    by_status = {}
    stop = time.monotonic() + seconds

    async def one(i):
        source = (f"127.0.1.{i + 1}", 0)
        head_i, body_i = (head(i), body(i)) if callable(head) else (head, body)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=source)
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                status, headers, _ = await request(reader, writer, head_i, body_i)
                by_status.setdefault(status, []).append(time.perf_counter() - t0)
                if status in (503, 429):
                    # As a client should: wait what Retry-After says before the next attempt.
                    await asyncio.sleep(min(float(headers.get("retry-after", "1")), max(0.0, stop - time.monotonic())))
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=source)
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    return by_status, time.monotonic() - started


def summary(name, by_status, elapsed, ok=200):
    lat = sorted(by_status.get(ok, []))
    others = {s: len(v) for s, v in by_status.items() if s != ok}
    if not lat:
        print(f"  {name:<34} no {ok} answers: {others}")
        return None
    med, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"  {name:<34} n={len(lat):>6}  {len(lat) / elapsed:>8.0f}/s  median {med * 1000:8.2f} ms  "
          f"p99 {p99 * 1000:8.2f} ms" + (f"  other statuses {others}" if others else ""))
    return med, p99


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / ".build" / "release" / "claworc"))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--instances", type=int, default=30)
    args = ap.parse_args()
    binary = pathlib.Path(args.binary)
    if not binary.exists():
        binary = ROOT / ".build" / "debug" / "claworc"
    claworc_harness.BINARY = binary
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-authload-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data", ["--instance-services", "none"]).start()
    try:
        admin = bootstrap_admin(daemon)
        for i in range(args.instances):
            admin.create(f"load-{i:02d}")
        for i in range(50):
            r = admin.http.post(admin.url("/api/v1/users"), json={"username": f"loader{i}", "password": PASSWORD, "role": "user"},
                                timeout=120)
            assert r.status_code == 201, r.text
        cookie = admin.http.cookies["claworc_session"]
        listed = Client(daemon)
        listed.http.cookies.set("claworc_session", cookie)
        assert len(listed.get("/api/v1/instances").json()["instances"]) == args.instances
        port = daemon.port
        print(f"auth_load: {binary} ({'release' if 'release' in str(binary) else 'DEBUG build'}), "
              f"{args.seconds:.0f} s per run, loopback")

        def login_body(i):
            return json.dumps({"username": f"loader{i}", "password": PASSWORD}).encode()

        def login_head(i):
            return http_head("POST", "/api/v1/auth/login", port, length=len(login_body(i)))
        health_head = http_head("GET", "/healthz", port)
        list_head = http_head("GET", "/api/v1/instances", port, extra=f"Cookie: claworc_session={cookie}\r\n")

        print("login, 50 concurrent clients:")
        floor50 = summary("GET /healthz (peer)", *asyncio.run(load(port, 50, args.seconds, health_head)))
        login = summary("POST /api/v1/auth/login", *asyncio.run(load(port, 50, args.seconds, login_head, login_body)))
        keys = register_passkeys(daemon, 50)
        print("passkey sign-in (options + signed assertion), 50 concurrent clients:")
        passkey = summary("passkey ceremony", *asyncio.run(passkey_load(port, keys, args.seconds)))
        if passkey and login:
            print(f"ratios: passkey/password sign-in at 50 clients: median {passkey[0] / login[0]:.3f}x, "
                  f"p99 {passkey[1] / login[1]:.3f}x; passkey/healthz median {passkey[0] / floor50[0]:.0f}x")
        print(f"authenticated listing, {args.instances} instances, 200 concurrent clients:")
        floor200 = summary("GET /healthz (peer)", *asyncio.run(load(port, 200, args.seconds, health_head)))
        listing = summary("GET /api/v1/instances (cookie)", *asyncio.run(load(port, 200, args.seconds, list_head)))
        if floor50 and login:
            print(f"ratios: login/healthz at 50 clients: median {login[0] / floor50[0]:.0f}x, p99 {login[1] / floor50[1]:.0f}x")
        if floor200 and listing:
            print(f"ratios: instances/healthz at 200 clients: median {listing[0] / floor200[0]:.2f}x, "
                  f"p99 {listing[1] / floor200[1]:.2f}x")
        assert daemon.proc.poll() is None, "the daemon died under load"
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
