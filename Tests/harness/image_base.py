"""A minimal root filesystem tree for the `image` root mode, made from the host's own files: a
few tools and the libraries they (and the daemon's binary) need, at their merged-/usr places."""
import pathlib
import shutil
import subprocess

from claworc_harness import BINARY

TOOLS = ["sh", "cat", "rm", "ls", "mkdir", "stat", "id", "touch", "sha256sum", "mv", "ln"]


def lib_paths(binary):
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    paths = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                paths.append(p)
    return paths


def into_base(base: pathlib.Path, path: str):
    """Copies a host file (dereferenced) into the base, at its merged-/usr location."""
    rel = path
    for short, full in (("/lib64/", "/usr/lib64/"), ("/lib/", "/usr/lib/"), ("/bin/", "/usr/bin/"), ("/sbin/", "/usr/sbin/")):
        if rel.startswith(short):
            rel = full + rel[len(short):]
            break
    if rel.startswith("/opt/"):
        return   # the daemon binds a development build's Swift runtime itself
    dest = base / rel.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, dest)


def build_base(base: pathlib.Path):
    for d in ["usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "etc", "var", "root", "opt"]:
        (base / d).mkdir(parents=True, exist_ok=True)
    for link, target in [("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin")]:
        (base / link).symlink_to(target)
    for tool in TOOLS:
        path = shutil.which(tool, path="/usr/bin:/bin")
        into_base(base, path)
        for lib in lib_paths(path):
            into_base(base, lib)
    for lib in lib_paths(BINARY):
        into_base(base, lib)
    for f in ["passwd", "group"]:
        shutil.copy2(f"/etc/{f}", base / "etc" / f)
    (base / "etc" / "base-file").write_text("from the base\n")
    (base / "root").chmod(0o700)
