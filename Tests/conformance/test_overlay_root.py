"""Check 22: the `image` root mode. An instance's root is an overlay of a shared, read-only,
id-mapped base tree and the instance's own upper layer: what root installs inside persists
across restarts, deletions become whiteouts, other instances never see it, and the base
stays byte-for-byte untouched."""
import hashlib
import os
import pathlib
import stat

import pytest

from image_base import image_appliance

def tree_digest(base: pathlib.Path):
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = pathlib.Path(dirpath, name)
            st = p.lstat()
            h.update(f"{p.relative_to(base)} {st.st_mode} {st.st_uid} {st.st_gid}".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(p.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def appliance():
    with image_appliance("claworc-image-") as (admin, _, base):
        yield admin, base


def run(admin, iid, script, user="root"):
    r = admin.post(f"/api/v1/instances/{iid}/exec", {"argv": ["sh", "-c", script], "user": user})
    assert r.status_code == 200, r.text
    return r.json()


def test_22_overlay_root_persists_whiteouts_and_leaves_the_base_untouched(appliance):
    admin, base = appliance
    before = tree_digest(base)
    a = admin.create("image-a")
    assert admin.post(f"/api/v1/instances/{a['id']}/start").status_code == 200, "image mode starts"

    # The id-mapped base: its root-owned files belong to root inside, so root can change them.
    out = run(admin, a["id"], "stat -c %u:%g /etc/base-file /usr/bin/sh; id -u")
    assert out["output"].split() == ["0:0", "0:0", "0"], out
    out = run(admin, a["id"], "mkdir -p /usr/local/bin && echo installed > /usr/local/bin/tool && rm /etc/base-file "
                              "&& echo changed >> /etc/passwd && echo done")
    assert out["output"].strip() == "done", out
    # The agent (uid 1000) cannot write the base's root-owned files.
    denied = run(admin, a["id"], "echo x > /usr/bin/agent-file; echo $?", user="agent")
    assert denied["output"].strip().endswith("2") or "denied" in denied["output"], denied

    assert admin.post(f"/api/v1/instances/{a['id']}/stop").json()["state"] == "stopped"
    upper = admin.daemon.data_dir / "instances" / str(a["id"]) / "root" / "upper"
    tool = upper / "usr" / "local" / "bin" / "tool"
    assert tool.read_text() == "installed\n"
    base_uid = int(pathlib.Path(upper).stat().st_uid)
    assert base_uid >= 0x10000000 and tool.stat().st_uid == base_uid, "written as the instance's root, not host root"
    whiteout = (upper / "etc" / "base-file").lstat()
    assert stat.S_ISCHR(whiteout.st_mode) and os.major(whiteout.st_rdev) == 0 and os.minor(whiteout.st_rdev) == 0
    assert tree_digest(base) == before, "the base is untouched"

    # Back after a restart; another instance sees only the base.
    assert admin.post(f"/api/v1/instances/{a['id']}/start").status_code == 200
    out = run(admin, a["id"], "cat /usr/local/bin/tool; ls /etc/base-file 2>&1 || echo gone")
    assert out["output"].splitlines()[0] == "installed" and out["output"].strip().endswith("gone"), out
    b = admin.create("image-b")
    assert admin.post(f"/api/v1/instances/{b['id']}/start").status_code == 200
    out = run(admin, b["id"], "cat /etc/base-file; ls /usr/local/bin/tool 2>&1 || echo absent")
    assert out["output"].splitlines()[0] == "from the base" and out["output"].strip().endswith("absent"), out
    for inst in (a, b):
        admin.post(f"/api/v1/instances/{inst['id']}/stop")
    assert tree_digest(base) == before
