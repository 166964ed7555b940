"""HTTPS on the LAN: a daemon listening on a non-loopback address serves TLS by default with a
self-signed ECDSA certificate it made (through the system OpenSSL), prints the certificate's
SHA-256 fingerprint beside the setup code, keeps the certificate across restarts, marks its
cookies Secure, and an optional plain-HTTP listener only redirects.

The "LAN" is a network namespace this test creates, with 192.0.2.10 (TEST-NET-1) on its
loopback device; the daemon and every client run inside it, so nothing leaves this machine.
"""
import json
import pathlib
import re
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "harness"))
from claworc_harness import BINARY, Client, Daemon, bootstrap_admin  # noqa: E402

ADDRESS = "192.0.2.10"
HTTPS_PORT = 8443
REDIRECT_PORT = 8080


@pytest.fixture
def lan():
    name = "cw-https-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", f"{ADDRESS}/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_namespace(namespace, code):
    """Runs a Python snippet inside the namespace; it prints one JSON document."""
    out = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class LanDaemon:
    """`claworc serve` inside the namespace, on its non-loopback address."""

    def __init__(self, namespace, data_dir, extra=()):
        self.namespace, self.data_dir, self.extra = namespace, data_dir, list(extra)
        self.console = ""

    def start(self):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, str(BINARY), "serve", "--listen", f"{ADDRESS}:{HTTPS_PORT}",
             "--data-dir", str(self.data_dir), "--default-network", "none", *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        # Readiness signal: the console line naming the address it listens on.
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, f"daemon exited: {self.console}"
            self.console += line
            if "claworc listening on" in line:
                return self
        raise TimeoutError(self.console)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def printed_fingerprints(self):
        return re.findall(r"(?:SHA-256 fingerprint|Certificate SHA-256): ([0-9A-F:]{95})", self.console)


PEER_CERTIFICATE = f"""
    import hashlib, json, socket, ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(socket.create_connection(("{ADDRESS}", {HTTPS_PORT}), timeout=10)) as s:
        der = s.getpeercert(binary_form=True)
        version = s.version()
        s.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: {ADDRESS}\\r\\nConnection: close\\r\\n\\r\\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    print(json.dumps({{"sha256": hashlib.sha256(der).hexdigest(), "version": version,
                      "status": reply.split(b"\\r\\n", 1)[0].decode()}}))
"""


def colon_hex(hexdigest):
    return ":".join(hexdigest[i:i + 2] for i in range(0, 64, 2)).upper()


def test_lan_address_serves_tls_with_the_printed_certificate_kept_across_restarts(lan, data_dir):
    data = data_dir
    daemon = LanDaemon(lan, data).start()
    try:
        printed = daemon.printed_fingerprints()
        assert "https://192.0.2.10:8443" in daemon.console
        assert "setup code" in daemon.console
        assert len(printed) == 2 and printed[0] == printed[1], daemon.console  # console line and beside the setup code
        seen = in_namespace(lan, PEER_CERTIFICATE)
        assert seen["status"] == "HTTP/1.1 200 OK"
        assert seen["version"] in ("TLSv1.3", "TLSv1.2")
        assert colon_hex(seen["sha256"]) == printed[0], "the certificate served is the one whose fingerprint was printed"

        cert, key = data / "tls" / "server.crt", data / "tls" / "server.key"
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        text = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-text"], capture_output=True, text=True).stdout
        assert "IP Address:192.0.2.10" in text, text
        assert "id-ecPublicKey" in text and "prime256v1" in text, text
        assert "TLS Web Server Authentication" in text and "CA:FALSE" in text, text

        # Nothing is served in clear on the HTTPS port.
        clear = in_namespace(lan, f"""
            import json, socket
            s = socket.create_connection(("{ADDRESS}", {HTTPS_PORT}), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except ConnectionResetError:
                pass
            print(json.dumps({{"plaintext_http": b"HTTP/1.1 200" in data}}))
        """)
        assert clear == {"plaintext_http": False}
    finally:
        daemon.stop()

    again = LanDaemon(lan, data).start()
    try:
        assert again.printed_fingerprints()[0] == printed[0], "the certificate made on first start is kept"
        assert colon_hex(in_namespace(lan, PEER_CERTIFICATE)["sha256"]) == printed[0]
    finally:
        again.stop()


def test_cookies_are_secure_over_https_and_plain_http_only_redirects(lan, data_dir):
    daemon = LanDaemon(lan, data_dir, ["--http-redirect", f"{ADDRESS}:{REDIRECT_PORT}"]).start()
    try:
        code = (data_dir / "setup-code").read_text().strip()
        seen = in_namespace(lan, f"""
            import http.client, json, ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("{ADDRESS}", {HTTPS_PORT}, context=ctx, timeout=20)
            body = json.dumps({{"code": "{code}", "username": "admin", "password": "correct-horse-battery"}})
            c.request("POST", "/api/v1/setup", body=body, headers={{"Content-Type": "application/json"}})
            r = c.getresponse()
            r.read()
            cookie = r.getheader("Set-Cookie")
            c.request("GET", "/api/v1/auth/me", headers={{"Cookie": cookie.split(";")[0]}})
            me = c.getresponse()
            me_status = me.status
            me.read()
            plain = http.client.HTTPConnection("{ADDRESS}", {REDIRECT_PORT}, timeout=10)
            plain.request("GET", "/instances/7?tab=logs", headers={{"Host": "claworc.lan:{REDIRECT_PORT}"}})
            moved = plain.getresponse()
            moved.read()
            plain.request("POST", "/api/v1/auth/login", body="{{}}", headers={{"Host": "evil.example/<x>"}})
            odd = plain.getresponse()
            odd.read()
            print(json.dumps({{"setup": r.status, "cookie": cookie, "me": me_status,
                              "redirect": [moved.status, moved.getheader("Location")],
                              "odd_host": [odd.status, odd.getheader("Location")]}}))
        """)
        assert seen["setup"] == 200
        attributes = [a.strip().lower() for a in seen["cookie"].split(";")]
        assert "secure" in attributes and "httponly" in attributes and "samesite=strict" in attributes, seen["cookie"]
        assert seen["me"] == 200, "the session works over HTTPS"
        assert seen["redirect"] == [308, f"https://claworc.lan:{HTTPS_PORT}/instances/7?tab=logs"]
        # A Host that is not a plain name is not echoed; the listen address stands in.
        assert seen["odd_host"] == [308, f"https://{ADDRESS}:{HTTPS_PORT}/api/v1/auth/login"]
    finally:
        daemon.stop()


def test_loopback_stays_plain_http_without_secure_cookies(data_dir):
    daemon = Daemon(data_dir)
    daemon.start()
    try:
        client = Client(daemon)
        r = client.post("/api/v1/setup", {"code": daemon.setup_code(), "username": "admin", "password": "correct-horse-battery"})
        assert r.status_code == 200
        attributes = [a.strip().lower() for a in r.headers["Set-Cookie"].split(";")]
        assert "secure" not in attributes and "httponly" in attributes
        assert not (data_dir / "tls").exists(), "no certificate is made for a loopback daemon"
    finally:
        daemon.stop()


def test_bad_tls_options_are_refused_before_anything_starts(tmp_path, data_dir):
    for args, message in [
        (["--tls-cert", "/nonexistent.crt"], "--tls-cert and --tls-key go together"),
        (["--tls", "sometimes"], "--tls must be auto, on or off"),
        (["--tls", "off", "--http-redirect", "127.0.0.1:8081"], "--http-redirect needs HTTPS"),
    ]:
        out = subprocess.run([str(BINARY), "serve", "--data-dir", str(tmp_path / "d"), *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 64 and message in out.stderr, (args, out.returncode, out.stderr)
    # A certificate that cannot be loaded stops the start with OpenSSL's reason, not a crash.
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    out = subprocess.run([str(BINARY), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
                          "--tls-cert", str(bad), "--tls-key", str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "certificate" in out.stderr, out.stderr
    assert not data_dir.exists(), "nothing half-made"
