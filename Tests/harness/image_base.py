"""A minimal root filesystem tree for the `image` root mode, made from the host's own files: a
few tools and the libraries they (and the daemon's binary) need, at their merged-/usr places."""
import contextlib
import pathlib
import shutil
import subprocess
import tempfile

from claworc_harness import BINARY, Daemon, bootstrap_admin

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


@contextlib.contextmanager
def image_appliance(prefix):
    """A daemon in the image root mode over a fresh base tree, instances without services;
    yields (admin client, daemon, base path) and removes everything afterwards."""
    root = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o711)   # instances reach their storage as unprivileged ids
    base = root / "base"
    build_base(base)
    daemon = Daemon(root / "data", extra_args=["--root-mode", "image", "--base-dir", str(base),
                                                "--instance-services", "none"]).start()
    try:
        yield bootstrap_admin(daemon), daemon, base
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
