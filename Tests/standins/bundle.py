"""make_bundle(): an OpenClaw bundle (.tar.gz of an npm install prefix) whose `openclaw` is the
Python gateway stand-in, shaped as the appliance's BundleInstaller expects:

    bin/openclaw -> ../lib/node_modules/openclaw/openclaw.mjs   (the symlink npm makes)
    lib/node_modules/openclaw/openclaw.mjs                      (#!/usr/bin/env python3 launcher)
    lib/node_modules/openclaw/package.json                      {"name": "openclaw", "version": ...}
    lib/node_modules/openclaw/standin.json                      the stand-in's default settings
    lib/node_modules/openclaw/standin/*.py, protocol.schema.json

`mode` picks the stand-in's defaults (OPENCLAW_STANDIN_* variables still override them): a
preset name from MODES or a dict of settings (see gateway_config.SETTINGS)."""
import gzip
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["openclaw_gateway.py", "gateway_config.py", "gateway_connect.py", "gateway_methods.py", "gateway_runs.py", "schema.py",
           "ed25519.py", "ws.py", "protocol.schema.json"]
MODES = {
    "v4": {"protocol": 4},
    "v3": {"protocol": 3},
    "no-ticks": {"protocol": 4, "ticks": False},
    "starting": {"protocol": 4, "sidecarsMs": 3000},
    "noisy": {"protocol": 4, "noise": True},
}
LAUNCHER = b"""#!/usr/bin/env python3
# OpenClaw gateway stand-in (tests only): npm would put OpenClaw's Node entry point here.
import os
import sys

here = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.join(here, "standin"))
from openclaw_gateway import main  # noqa: E402

sys.exit(main(sys.argv[1:], defaults_path=os.path.join(here, "standin.json")))
"""


def make_bundle(path, version="2026.11.30-standin", mode="v4", node=False):
    """Writes the bundle to `path` and returns `path`. `node=True` adds a `bin/node` (a shell
    script, not Node) for installers that look for a bundled runtime."""
    settings = dict(MODES[mode]) if isinstance(mode, str) else dict(mode)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data=b"", mode=0o644, kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo("./" + name if name else "./")
            info.type, info.mode, info.linkname = kind, mode, link
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 1764460800  # fixed: the same inputs make the same archive
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        pkg = "lib/node_modules/openclaw"
        for directory in ("", "bin", "lib", "lib/node_modules", pkg, pkg + "/standin"):
            add(directory, kind=tarfile.DIRTYPE, mode=0o755)
        add(pkg + "/openclaw.mjs", LAUNCHER, mode=0o755)
        add(pkg + "/package.json", json.dumps({"name": "openclaw", "version": version, "bin": {"openclaw": "openclaw.mjs"}},
                                              indent=2).encode())
        add(pkg + "/standin.json", json.dumps(settings).encode())
        for name in SOURCES:
            with open(os.path.join(HERE, name), "rb") as f:
                add(f"{pkg}/standin/{name}", f.read())
        add("bin/openclaw", kind=tarfile.SYMTYPE, link="../lib/node_modules/openclaw/openclaw.mjs")
        if node:
            add("bin/node", b"#!/bin/sh\necho 'v24.15.0 (stand-in)'\n", mode=0o755)
    with open(path, "wb") as f:
        f.write(gzip.compress(buf.getvalue(), mtime=0))
    return path
