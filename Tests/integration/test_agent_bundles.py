"""Installing OpenClaw bundles: a .tar.gz of an npm install prefix, uploaded by an admin,
unpacked by the daemon (root) as untrusted input. Escapes, special files and oversized members
are refused and leave nothing behind."""
import gzip
import io
import json
import os
import stat
import tarfile

import subprocess

import pytest

from claworc_harness import BINARY, Client


def bundle(version="2026.11.30", extra=(), package=True, gz=True):
    """A bundle shaped like `npm install -g --prefix P openclaw` made into `tar -C P -czf - .`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name, data=b"", mode=0o644, kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("./", kind=tarfile.DIRTYPE, mode=0o755)
        add("./lib/node_modules/openclaw", kind=tarfile.DIRTYPE, mode=0o755)
        add("./lib/node_modules/openclaw/openclaw.mjs", b"#!/usr/bin/env node\n", mode=0o4755)  # set-uid dropped
        if package:
            add("./lib/node_modules/openclaw/package.json", json.dumps({"name": "openclaw", "version": version}).encode())
        add("./bin/openclaw", kind=tarfile.SYMTYPE, link="../lib/node_modules/openclaw/openclaw.mjs")
        for item in extra:
            add(*item[:1], **item[1])
    raw = buf.getvalue()
    return gzip.compress(raw) if gz else raw


def upload(client, data):
    return client.http.post(client.url("/api/v1/agent/bundles"), data=data, timeout=120,
                            headers={"Content-Type": "application/gzip"})


def bundles_dir(client):
    return client.daemon.data_dir / "agent" / "bundles"


def leftovers(client):
    d = bundles_dir(client)
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_a_bundle_installs_and_becomes_active(admin):
    r = upload(admin, bundle())
    assert r.status_code == 201, r.text
    assert r.json()["bundle"] == {"version": "2026.11.30", "node": False, "active": True}
    root = bundles_dir(admin) / "2026.11.30"
    mjs = root / "lib/node_modules/openclaw/openclaw.mjs"
    assert stat.S_IMODE(mjs.stat().st_mode) == 0o755, "executable, without its set-uid bit"
    assert os.readlink(root / "bin/openclaw") == "../lib/node_modules/openclaw/openclaw.mjs"
    assert mjs.stat().st_uid == 0
    again = upload(admin, bundle())
    assert again.status_code == 409 and again.json()["error"]["code"] == "version_installed"

    r = upload(admin, bundle("2026.12.1", extra=[("./bin/node", {"data": b"\x7fELF", "mode": 0o755})]))
    assert r.json()["bundle"] == {"version": "2026.12.1", "node": True, "active": False}
    listed = admin.get("/api/v1/agent/bundles").json()["bundles"]
    assert [(b["version"], b["active"]) for b in listed] == [("2026.11.30", True), ("2026.12.1", False)]
    gone = admin.delete("/api/v1/agent/bundles/2026.11.30")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "bundle_active"
    assert admin.http.put(admin.url("/api/v1/agent/active"), json={"version": "2026.12.1"}, timeout=30).status_code == 200
    assert admin.delete("/api/v1/agent/bundles/2026.11.30").status_code == 204
    assert leftovers(admin) == ["2026.12.1"]
    missing = admin.http.put(admin.url("/api/v1/agent/active"), json={"version": "9.9.9"}, timeout=30)
    assert missing.status_code == 404


HOSTILE = {
    "parent path": [("../evil", {"data": b"x"})],
    "nested parent path": [("./lib/../../evil", {"data": b"x"})],
    "absolute path": [("/tmp/claworc-evil", {"data": b"x"})],
    "symlink out": [("./bin/escape", {"kind": tarfile.SYMTYPE, "link": "../../../etc/shadow"})],
    "absolute symlink": [("./bin/escape", {"kind": tarfile.SYMTYPE, "link": "/etc/shadow"})],
    "write through a symlink": [("./lib/up", {"kind": tarfile.SYMTYPE, "link": ".."}), ("./lib/up/planted", {"data": b"x"})],
    "character device": [("./dev-null", {"kind": tarfile.CHRTYPE})],
    "fifo": [("./pipe", {"kind": tarfile.FIFOTYPE})],
    "hard link": [("./hard", {"kind": tarfile.LNKTYPE, "link": "lib/node_modules/openclaw/package.json"})],
    "duplicate member": [("./lib/node_modules/openclaw/openclaw.mjs", {"data": b"again"})],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bundles_are_refused_and_leave_nothing(admin, case):
    r = upload(admin, bundle(extra=HOSTILE[case]))
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert r.json()["error"]["code"] == "invalid_bundle"
    assert leftovers(admin) == [], f"{case}: nothing may be left behind"
    assert not os.path.exists("/tmp/claworc-evil")


def test_malformed_and_oversized_archives_are_refused(admin):
    cases = {
        "not gzip": b"PK\x03\x04 a zip file",
        "bare tar": bundle(gz=False),
        "truncated": bundle()[:len(bundle()) // 2],
        "trailer cut off": bundle()[:-4],
        "no package.json": bundle(package=False),
    }
    # A member whose header claims 2 GiB: refused from the header, before any content is read.
    header = tarfile.TarInfo("./huge.bin")
    header.size = 2 << 30
    cases["oversized member"] = gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024)
    for name, data in cases.items():
        r = upload(admin, data)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_bundle", (name, r.status_code, r.text)
        assert leftovers(admin) == [], name


def test_only_admins_manage_bundles(admin):
    r = admin.post("/api/v1/users", {"username": "plain", "password": "a-good-password", "role": "user"})
    assert r.status_code == 201
    user = Client(admin.daemon)
    user.login("plain", "a-good-password")
    assert upload(user, bundle()).status_code == 403
    assert user.get("/api/v1/agent/bundles").status_code == 403
    assert leftovers(admin) == []


def test_the_command_line_installs_and_lists(admin, tmp_path):
    good, bad = tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz"
    good.write_bytes(bundle("2027.1.2"))
    bad.write_bytes(bundle(extra=HOSTILE["symlink out"]))
    run = lambda *a: subprocess.run([str(BINARY), "agent", *a, "--data-dir", str(admin.daemon.data_dir)],
                                    capture_output=True, text=True, timeout=60)
    out = run("install", str(good))
    assert out.returncode == 0 and "installed OpenClaw 2027.1.2 (active)" in out.stdout, out.stderr
    refused = run("install", str(bad))
    assert refused.returncode == 1 and "points outside the bundle" in refused.stderr
    assert run("list").stdout.strip() == "2027.1.2  (active)"
    assert [b["version"] for b in admin.get("/api/v1/agent/bundles").json()["bundles"]] == ["2027.1.2"]
    assert leftovers(admin) == ["2027.1.2"]
