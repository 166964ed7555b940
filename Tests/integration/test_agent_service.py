"""The agent service: the active OpenClaw bundle mounted read-only into an instance, `openclaw
gateway run` supervised as service `agent`, and the instance's ~/.openclaw/openclaw.json written
by the daemon (merged, never clobbered; no provider key in it). The stand-in gateway from
Tests/standins is the OpenClaw here, installed through the real upload API."""
import gzip
import io
import json
import os
import pathlib
import stat
import sys
import tarfile

import pytest

from claworc_harness import host_pid_of, init_pid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "standins"))
from bundle import make_bundle  # noqa: E402
from fake_llm import FakeLLM  # noqa: E402

KEY = "sk-real-provider-" + "Zq9" * 8 + "LAST"
NODE_REMEDY = "OpenClaw needs Node.js"


def upload(client, data):
    return client.http.post(client.url("/api/v1/agent/bundles"), data=data, timeout=120,
                            headers={"Content-Type": "application/gzip"})


def put(client, path, body):
    return client.http.put(client.url(path), json=body, timeout=60)


def agent_of(inst):
    return next(s for s in inst["services"] if s["name"] == "agent")


def config_path(client, iid):
    return client.daemon.data_dir / "instances" / str(iid) / "home" / ".openclaw" / "openclaw.json"


def exec_in(client, iid, argv, user="agent"):
    r = client.post(f"/api/v1/instances/{iid}/exec", {"argv": argv, "user": user, "timeout_ms": 20_000})
    assert r.status_code == 200, r.text
    return r.json()


def node_bundle(version):
    """A bundle whose launcher asks for node and that carries none: needs the instance's."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name, data=b"", mode=0o644, kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        for d in ("./", "./bin", "./lib", "./lib/node_modules", "./lib/node_modules/openclaw"):
            add(d, kind=tarfile.DIRTYPE, mode=0o755)
        add("./lib/node_modules/openclaw/openclaw.mjs", b"#!/usr/bin/env node\nprocess.exit(1)\n", mode=0o755)
        add("./lib/node_modules/openclaw/package.json", json.dumps({"name": "openclaw", "version": version}).encode())
        add("./bin/openclaw", kind=tarfile.SYMTYPE, link="../lib/node_modules/openclaw/openclaw.mjs")
    return gzip.compress(buf.getvalue())


@pytest.fixture(scope="module")
def llm():
    fake = FakeLLM(api_key=KEY, models=("fake-model", "fake-2")).start()
    yield fake
    fake.stop()


def test_agent_runs_with_its_config(shared_admin, llm, tmp_path):
    admin = shared_admin
    r = upload(admin, open(make_bundle(tmp_path / "b.tar.gz", version="2026.11.30-standin"), "rb").read())
    assert r.status_code == 201, r.text
    r = put(admin, "/api/v1/providers/fake", {"api": "openai-completions", "base_url": llm.url + "/v1", "api_key": KEY,
                                              "models": ["fake-model", "fake-2"]})
    assert r.status_code == 200 and r.json()["agents"] == [], r.text
    r = put(admin, "/api/v1/settings/instance-defaults", {"model": "fake/fake-model", "fallbacks": ["fake/fake-2"]})
    assert r.status_code == 200 and r.json()["agents"] == [], r.text

    iid = admin.create("agent1")["id"]
    # What OpenClaw (or the user) wrote before: kept, in place, around Claworc's members.
    home = admin.daemon.data_dir / "instances" / str(iid) / "home"
    owner = home.stat().st_uid
    (home / ".openclaw").mkdir()
    os.chown(home / ".openclaw", owner, owner)
    before = {"meta": {"lastTouchedVersion": "2026.11.1"},
              "gateway": {"controlUi": {"enabled": False}, "port": 1},
              "session": {"dmScope": "main"}}
    config_path(admin, iid).write_text(json.dumps(before))
    os.chown(config_path(admin, iid), owner, owner)

    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    inst = admin.wait_all_services_ready(iid, timeout=120, agent=True)
    first_pid = agent_of(inst)["pid"]
    # As the agent user, without capabilities, its stdin a pipe that stays open.
    init = init_pid(admin.daemon, "agent1")
    status = pathlib.Path(f"/proc/{host_pid_of(init, first_pid)}/status").read_text()
    uids = next(l for l in status.splitlines() if l.startswith("Uid:")).split()[1:]
    assert uids == [str(owner)] * 4, uids
    assert int(next(l for l in status.splitlines() if l.startswith("CapEff:")).split()[1], 16) == 0
    assert os.readlink(f"/proc/{host_pid_of(init, first_pid)}/fd/0").startswith("pipe:")

    path = config_path(admin, iid)
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == owner and st.st_gid == owner
    text = path.read_text()
    assert KEY not in text and KEY[-8:] not in text, "no provider key in the instance"
    cfg = json.loads(text)
    assert list(cfg)[:3] == ["meta", "gateway", "session"], "foreign members keep their place"
    assert cfg["meta"] == before["meta"] and cfg["session"] == before["session"]
    gw = cfg["gateway"]
    assert gw["controlUi"] == {"enabled": False} and list(gw)[0] == "controlUi"
    assert gw["mode"] == "local" and gw["port"] == 18789 and gw["bind"] == "loopback"
    assert gw["auth"]["mode"] == "token" and len(gw["auth"]["token"]) >= 32
    assert cfg["agents"]["defaults"]["model"] == {"primary": "fake/fake-model", "fallbacks": ["fake/fake-2"]}
    fake = cfg["models"]["providers"]["fake"]
    assert fake["baseUrl"] == "http://127.0.0.1:8399/providers/fake" and fake["api"] == "openai-completions"
    assert fake["apiKey"].startswith("cwp_")
    assert fake["models"] == [{"id": "fake-model", "name": "fake-model"}, {"id": "fake-2", "name": "fake-2"}]
    assert cfg["tools"]["profile"] == "full"
    assert cfg["browser"]["attachOnly"] is True and cfg["browser"]["defaultProfile"] == "claworc"
    assert cfg["browser"]["profiles"]["claworc"]["cdpUrl"] == "http://127.0.0.1:9222"

    # The gateway answers inside the instance, with the token written for it; the bundle is
    # mounted read-only.
    probe = ("import urllib.request as u;"
             "print(u.urlopen('http://127.0.0.1:18789/healthz', timeout=5).status)")
    out = exec_in(admin, iid, ["python3", "-c", probe])
    assert out["exit_code"] == 0 and out["output"].strip() == "200", out
    out = exec_in(admin, iid, ["sh", "-c", "touch /opt/openclaw/x; grep -c ' /opt/openclaw .*ro,nosuid,nodev' /proc/self/mountinfo"], user="root")
    assert "Read-only file system" in out["output"] and out["output"].strip().endswith("1"), out
    out = exec_in(admin, iid, ["sh", "-c", "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c sk-real-provider-Zq9 || true"], user="root")
    assert out["output"].strip() == "0", "no provider key in any environment inside"

    # A model change reaches the running agent by a restart, and the answer says so.
    r = put(admin, f"/api/v1/instances/{iid}/settings", {"model": "fake/fake-2"})
    assert r.status_code == 200 and r.json()["agent"] == "restarted", r.text
    assert json.loads(path.read_text())["agents"]["defaults"]["model"]["primary"] == "fake/fake-2"
    inst = admin.wait_for(iid, lambda i: agent_of(i)["state"] == "ready" and agent_of(i)["pid"] != first_pid,
                          60, "agent restarted")
    # The same settings again: nothing to do.
    r = put(admin, f"/api/v1/instances/{iid}/settings", {"model": "fake/fake-2"})
    assert r.json()["agent"] == "unchanged", r.text
    # A key override never reaches the file: unchanged.
    r = put(admin, f"/api/v1/instances/{iid}/settings", {"model": "fake/fake-2", "provider_keys": {"fake": KEY + "2"}})
    assert r.json()["agent"] == "unchanged" and KEY not in path.read_text(), r.text
    # Provider changes report per running instance.
    r = put(admin, "/api/v1/providers/fake", {"api": "openai-completions", "base_url": llm.url + "/v1",
                                              "models": ["fake-model", "fake-2", "fake-3"]})
    assert r.json()["agents"] == [{"id": iid, "name": "agent1", "agent": "restarted"}], r.text
    admin.wait_all_services_ready(iid, timeout=60, agent=True)

    # Exit 78: a key OpenClaw does not know, written by hand, is kept by the merge and refused.
    cfg = json.loads(path.read_text())
    cfg["gateway"]["bogus"] = True
    path.write_text(json.dumps(cfg))
    assert admin.post(f"/api/v1/instances/{iid}/services/agent/restart").status_code == 200
    inst = admin.wait_for(iid, lambda i: agent_of(i)["state"] == "failed", 60, "agent failed on its config")
    assert "invalid configuration (exit 78)" in agent_of(inst)["reason"] and "openclaw doctor" in agent_of(inst)["reason"]
    assert all(s["state"] == "ready" for s in inst["services"] if s["name"] != "agent"), inst
    del cfg["gateway"]["bogus"]
    path.write_text(json.dumps(cfg))
    assert admin.post(f"/api/v1/instances/{iid}/services/agent/restart").status_code == 200
    admin.wait_all_services_ready(iid, timeout=60, agent=True)

    # JSON5 (comments) is kept aside and the file rewritten as strict JSON.
    path.write_text("// mine\n{gateway: {mode: 'local'},}\n")
    r = put(admin, f"/api/v1/instances/{iid}/settings", {"model": "fake/fake-model"})
    assert r.json()["agent"] == "restarted", r.text
    assert json.loads(path.read_text())["agents"]["defaults"]["model"]["primary"] == "fake/fake-model"
    kept = [p.name for p in path.parent.iterdir() if p.name.startswith("openclaw.json.bak-")]
    assert len(kept) == 1 and (path.parent / kept[0]).read_text().startswith("// mine"), kept

    # Switching the active bundle: the note says when it applies; at the next start it does.
    # This one needs Node ≥ 22 from the instance, whose root has an older one (or none).
    r = upload(admin, node_bundle("2026.12.1-node"))
    assert r.status_code == 201, r.text
    r = put(admin, "/api/v1/agent/active", {"version": "2026.12.1-node"})
    assert r.status_code == 200 and "next start" in r.json()["note"], r.text
    assert admin.post(f"/api/v1/instances/{iid}/stop").status_code == 200
    admin.wait_for(iid, lambda i: i["state"] == "stopped", 60, "stopped")
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    inst = admin.wait_for(iid, lambda i: i["state"] == "running" and agent_of(i)["state"] == "failed", 60, "node check")
    assert NODE_REMEDY in agent_of(inst)["reason"] and "bin/node" in agent_of(inst)["reason"], agent_of(inst)
    admin.wait_all_services_ready(iid)
    admin.post(f"/api/v1/instances/{iid}/stop")
    assert KEY not in admin.daemon.log_text()


def test_no_bundle_fails_the_agent_only(admin):
    iid = admin.create("nobundle")["id"]
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    inst = admin.wait_all_services_ready(iid)
    agent = agent_of(inst)
    assert agent["state"] == "failed" and agent["reason"] == \
        "no OpenClaw bundle installed: an admin installs one under Agent, then this instance is restarted"
    out = exec_in(admin, iid, ["sh", "-c", "test -e /opt/openclaw; echo $?"])
    assert out["output"].strip() == "1", "nothing mounted without a bundle"
    admin.post(f"/api/v1/instances/{iid}/stop")
