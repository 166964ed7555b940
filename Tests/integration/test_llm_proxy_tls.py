"""The key proxy to a provider over HTTPS: the daemon's TLS client (the system OpenSSL) sends
SNI, verifies the provider's certificate against the CA store (here a test CA, given to the
daemon as SSL_CERT_FILE, which OpenSSL's default verify paths honour) and checks that it names
the host in the base URL. A certificate for another name, or from an unknown CA, is a 502
without the request (and its key) ever being sent."""
import json
import os
import pathlib
import shutil
import ssl
import subprocess
import sys
import tempfile

import pytest

from claworc_harness import Daemon, bootstrap_admin
from test_llm_proxy import KEY, bearer, credential, inside

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "standins"))
from fake_llm import FakeLLM  # noqa: E402


def make_cert(directory, name, ca=None):
    """A CA (ca=None) or a leaf for `name` signed by `ca`; returns (cert, key) paths."""
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}", "-days", "2",
                        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                        "-out", str(cert)], check=True, capture_output=True)
    else:
        csr = directory / f"{name}.csr"
        ext = directory / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
        subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr)], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
                        "-days", "2", "-extfile", str(ext), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def https_llm(cert, key):
    llm = FakeLLM(api_key=KEY)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    llm.sni = []
    context.sni_callback = lambda sock, name, ctx: llm.sni.append(name)
    llm.server.socket = context.wrap_socket(llm.server.socket, server_side=True)
    return llm.start()


@pytest.fixture
def tls_env(monkeypatch):
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-test-"))
    base.chmod(0o711)
    certs = base / "certs"
    certs.mkdir()
    ca = make_cert(certs, "test-ca")
    good = https_llm(*make_cert(certs, "localhost", ca))
    wrong = https_llm(*make_cert(certs, "elsewhere.example", ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca[0]))
    daemon = Daemon(base / "data", ["--instance-services", "none"]).start()
    admin = bootstrap_admin(daemon)
    iid = admin.create("tls")["id"]
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    yield daemon, admin, iid, good, wrong
    daemon.stop()
    good.stop()
    wrong.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_https_provider_verified_by_name(tls_env):
    daemon, admin, iid, good, wrong = tls_env
    for name, llm in (("good", good), ("wrong", wrong)):
        port = llm.url.rsplit(":", 1)[1]
        r = admin.http.put(admin.url(f"/api/v1/providers/{name}"), json={
            "api": "openai-completions", "base_url": f"https://localhost:{port}/v1", "api_key": KEY, "models": ["m"]}, timeout=30)
        assert r.status_code == 200, r.text
    body = {"model": "tls-model", "messages": [{"role": "user", "content": "over tls"}], "stream": True}
    got = inside(admin, iid, "/providers/good/chat/completions", body, bearer(credential(daemon, iid)))
    assert got["status"] == 200 and got["body"].encode() == bytes(good.streams[-1]), got
    assert good.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"
    assert good.sni == ["localhost"]
    got = inside(admin, iid, "/providers/wrong/chat/completions", body, bearer(credential(daemon, iid)))
    assert got["status"] == 502 and json.loads(got["body"])["error"]["code"] == "upstream_unreachable", got
    assert wrong.requests == [], "nothing may be sent to a server whose certificate names another host"
    assert KEY not in daemon.log_text()
