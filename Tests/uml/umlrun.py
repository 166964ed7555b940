#!/usr/bin/env python3
"""Run one command inside a throwaway user-mode Linux (UML) guest.

The build/CI machine has a hybrid cgroup layout (v1 hierarchies, an empty
cgroup2 tree), so cgroup v2 limits cannot be exercised on the host.  UML is a
Linux kernel that runs as an ordinary host process; booted with the host's own
filesystem as its root (hostfs, read-only), it gives every test a private
kernel with a real cgroup2 hierarchy, namespaces and an OOM killer, in about
two seconds and with nothing to prepare on disk.

Python API (stdlib only)::

    from umlrun import run_in_uml
    r = run_in_uml(["cat", "/sys/fs/cgroup/cgroup.controllers"])
    r.exit_code, r.output, r.boot_seconds, r.guest_kernel, r.scratch

CLI::

    python3 Tests/uml/umlrun.py [--mem 1024M] [--timeout 300] -- cmd args...

See README.md beside this file for what the guest looks like.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Iterable, Mapping, Sequence

__all__ = [
    "UMLResult",
    "UMLError",
    "UMLNotAvailable",
    "UMLBootError",
    "UMLTimeout",
    "run_in_uml",
    "find_kernel",
]

# Directories the guest covers with a fresh tmpfs (or devtmpfs, for /dev).  A
# host path below one of these is invisible in the guest unless it is mounted
# back in through hostfs, which the init script does for the cwd and scratch.
COVERED_DIRS = ("/tmp", "/run", "/var/tmp", "/dev")

DEFAULT_MODULES = ("overlay", "veth")
CONSOLE_TAIL_LINES = 60


class UMLError(RuntimeError):
    """The guest could not run the command (its console log tail is in the message)."""

    def __init__(self, message: str, console: str = "", pid: int | None = None):
        self.console = console
        self.pid = pid  # host pid of the UML kernel (= its process group and session), if started
        if console:
            tail = "\n".join(console.splitlines()[-CONSOLE_TAIL_LINES:])
            message = f"{message}\n--- UML console (last {CONSOLE_TAIL_LINES} lines) ---\n{tail}"
        super().__init__(message)


class UMLNotAvailable(UMLError):
    """No user-mode Linux kernel is installed (Debian package user-mode-linux)."""


class UMLBootError(UMLError):
    """The UML kernel started but the guest never got as far as running the command."""


class UMLTimeout(UMLError, TimeoutError):
    """The run exceeded its timeout; the UML process tree was killed."""

    def __init__(self, message: str, console: str = "", output: str = "", pid: int | None = None):
        self.output = output
        super().__init__(message, console, pid)


@dataclasses.dataclass
class UMLResult:
    exit_code: int
    """The command's exit status; 128+N if a signal N killed it (shell convention)."""
    output: str
    """The command's stdout and stderr, interleaved as written (one file, O_APPEND-free shared fd)."""
    boot_seconds: float
    """Host wall time from starting the UML kernel to the guest being about to exec the command."""
    guest_kernel: str
    """`uname -r` inside the guest, e.g. 6.1.176."""
    scratch: pathlib.Path
    """Host directory that was writable in the guest at the same path."""
    wall_seconds: float = 0.0
    """Host wall time of the whole run, boot to UML process exit."""
    modules: dict = dataclasses.field(default_factory=dict)
    """Requested module name -> 'loaded' | 'already' | 'missing' | 'failed: ...'."""
    console: str = ""
    """The guest console (kernel log plus harness markers), for diagnosis."""
    scratch_is_temporary: bool = False

    def cleanup(self) -> None:
        """Remove the scratch directory if run_in_uml created it."""
        if self.scratch_is_temporary:
            shutil.rmtree(self.scratch, ignore_errors=True)


# --------------------------------------------------------------------------- host side helpers


def find_kernel() -> str:
    """Path of the UML kernel binary; $UMLRUN_KERNEL overrides."""
    override = os.environ.get("UMLRUN_KERNEL")
    if override:
        if os.access(override, os.X_OK):
            return override
        raise UMLNotAvailable(f"UMLRUN_KERNEL={override!r} is not an executable file")
    for name in ("linux.uml", "/usr/bin/linux.uml"):
        path = shutil.which(name)
        if path:
            return path
    raise UMLNotAvailable(
        "user-mode Linux is not installed: no linux.uml on PATH "
        "(install the Debian package 'user-mode-linux', e.g. via scripts/install-deps.sh test)"
    )


def _find_busybox() -> str | None:
    for cand in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def _kernel_version(kernel: str) -> str:
    try:
        out = subprocess.run(
            [kernel, "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.splitlines()[-1].strip() if out else ""


def _module_plan(version: str, modules: Iterable[str]) -> list[tuple[str, list[str]]]:
    """For each requested module, the .ko files to insmod in order (dependencies first).

    An empty list means the module file was not found for this kernel version.
    """
    moddir = pathlib.Path("/usr/lib/uml/modules") / version
    deps: dict[str, list[str]] = {}
    try:
        for line in (moddir / "modules.dep").read_text().splitlines():
            if ":" in line:
                mod, rest = line.split(":", 1)
                deps[mod.strip()] = rest.split()
    except OSError:
        pass
    by_name = {}
    for mod in deps:
        base = os.path.basename(mod)
        base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
        by_name[base.replace("-", "_")] = mod

    plan = []
    for name in modules:
        key = name.replace("-", "_")
        mod = by_name.get(key)
        if mod is None:
            plan.append((name, []))
            continue
        order: list[str] = []

        def visit(m: str) -> None:
            for d in deps.get(m, []):
                visit(d)
            if m not in order:
                order.append(m)

        visit(mod)
        plan.append((name, [str(moddir / m) for m in order]))
    return plan


def _mem_bytes(mem: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", mem)
    if not m:
        raise ValueError(f"bad mem size {mem!r} (want e.g. 512M or 1G)")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def _uml_host_env(mem: str) -> dict:
    """Environment of the UML kernel process itself (not of the guest command).

    UML backs guest RAM with an unlinked file in $TMPDIR, else /dev/shm.  That file
    grows to mem plus a few hundred MB, so where /dev/shm is small (containers often
    give 64 MB) guest memory would SIGBUS: fall back to /tmp, which is slower but
    roomy.  An explicit TMPDIR is left alone.
    """
    env = dict(os.environ)
    if "TMPDIR" not in env:
        try:
            st = os.statvfs("/dev/shm")
            free = st.f_bavail * st.f_frsize
        except OSError:
            free = 0
        if free < _mem_bytes(mem) + (512 << 20):
            env["TMPDIR"] = "/tmp"
    return env


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _check_mount_path(path: str, what: str) -> None:
    # The hostfs mount option is the host path itself, passed through mount -o.
    if "," in path or "\n" in path:
        raise ValueError(f"{what} path {path!r} must not contain ',' or newlines (hostfs mount option)")


def _pids_in_group(pgid: int) -> list[int]:
    """Live host processes whose process group or session is `pgid` (UML's own session)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("latin-1")
        except OSError:
            continue
        # Fields after the ")" that closes comm: state ppid pgrp session ...
        fields = stat[stat.rfind(")") + 2 :].split()
        try:
            if fields[0] == "Z":  # already dead, only waiting for its parent to reap it
                continue
            if int(fields[2]) == pgid or int(fields[3]) == pgid:
                found.append(int(entry))
        except (IndexError, ValueError):
            continue
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the UML kernel and every process in its session/process group, then reap."""
    pgid = proc.pid  # start_new_session=True made UML a session and group leader
    for _ in range(50):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in _pids_in_group(pgid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        if not _pids_in_group(pgid):
            return
        time.sleep(0.05)  # zombies of other parents take a moment to be reaped
    left = _pids_in_group(pgid)
    if left:
        raise UMLError(f"could not kill UML processes {left} (session {pgid})")


# --------------------------------------------------------------------------- guest init script


def _init_script(
    *,
    nonce: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    scratch: str,
    outdir_host: str,
    stage2_host: str,
    busybox: str | None,
    module_plan: list[tuple[str, list[str]]],
) -> tuple[str, str]:
    """Returns (stage1, stage2).

    Stage 1 is the kernel's init= program and lives on the read-only hostfs root in a
    host temp dir (usually below /tmp).  It copies stage 2 onto the kernel-mounted
    devtmpfs (/dev) and execs it, so nothing the init shell still reads lives in a
    directory that stage 2 later covers with a tmpfs.
    """
    q = shlex.quote
    m = f"UMLRUN-{nonce}"
    stage1 = f"""#!/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mkdir /dev/.umlrun 2>/dev/null || {{ mount -t devtmpfs devtmpfs /dev; mkdir -p /dev/.umlrun; }}
cp {q(stage2_host)} /dev/.umlrun/stage2 && exec /bin/sh /dev/.umlrun/stage2
echo "{m}-ERROR stage1: could not copy stage 2 to /dev" > /dev/console
echo o > /proc/sysrq-trigger
"""

    bb = q(busybox) if busybox else ""
    lines = [
        "#!/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "export PATH",
        "exec </dev/null >/dev/console 2>&1",
        f"say() {{ echo \"{m}-$*\"; }}",
        "poweroff_now() {",
        "  sync",
        "  umount /run/umlrun/out 2>/dev/null",
        (f"  {bb} poweroff -f 2>/dev/null" if busybox else "  :"),
        "  echo o > /proc/sysrq-trigger",
        "  while :; do sleep 60; done",
        "}",
        'die() { say "ERROR $*"; poweroff_now; }',
        # pseudo file systems
        "mountpoint -q /proc || mount -t proc -o nosuid,nodev,noexec proc /proc || die 'mount /proc'",
        "mountpoint -q /sys || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || die 'mount /sys'",
        "mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev",
        "mkdir -p /dev/pts /dev/shm",
        "mount -t devpts -o newinstance,gid=5,mode=620,ptmxmode=666 devpts /dev/pts || say 'WARN devpts'",
        "[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx",
        "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm || say 'WARN /dev/shm'",
        "[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd",
        "[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin",
        "[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout",
        "[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr",
        "mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run || die 'mount /run'",
        "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp || die 'mount /tmp'",
        "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp || say 'WARN /var/tmp'",
        # cgroup2: init into a leaf, every controller enabled for the root's children
        "mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || die 'mount cgroup2'",
        "mkdir -p /sys/fs/cgroup/init && echo $$ > /sys/fs/cgroup/init/cgroup.procs || die 'cgroup init leaf'",
        "for c in $(cat /sys/fs/cgroup/cgroup.controllers); do",
        "  echo +$c > /sys/fs/cgroup/cgroup.subtree_control || say \"WARN controller $c\"",
        "done",
        'say "CGROUP $(cat /sys/fs/cgroup/cgroup.subtree_control)"',
        # identity and loopback
        "echo uml > /proc/sys/kernel/hostname",
        (
            f"ip link set lo up 2>/dev/null || {bb} ip link set lo up 2>/dev/null || say 'WARN lo'"
            if busybox
            else "ip link set lo up 2>/dev/null || say 'WARN lo'"
        ),
    ]
    # kernel modules (report, never fail)
    for name, files in module_plan:
        if not files:
            lines.append(f"say 'MODULE {name} missing'")
            continue
        if not busybox:
            lines.append(f"say 'MODULE {name} failed: no busybox on the host for insmod'")
            continue
        key = name.replace("-", "_")
        steps = " && ".join(
            # a dependency that is built in or already loaded is fine
            f"{{ [ -d /sys/module/{q(os.path.basename(f).split('.')[0].replace('-', '_'))} ] || {bb} insmod {q(f)}; }}"
            for f in files
        )
        lines += [
            f"if [ -d /sys/module/{q(key)} ]; then say 'MODULE {name} already';",
            f"elif err=$( {{ {steps}; }} 2>&1 ); then say 'MODULE {name} loaded';",
            f"else say \"MODULE {name} failed: $(echo $err | tr -d '\\n')\"; fi",
        ]

    # writable host directories through hostfs
    lines += [
        "mkdir -p /run/umlrun/out",
        f"mount -t hostfs -o {q(outdir_host)} hostfs /run/umlrun/out || die {q('mount hostfs control dir ' + outdir_host)}",
    ]
    # Parents before children, so a later mount never hides an earlier one.
    host_mounts = [(scratch, "rw")]
    if not _under(cwd, scratch) and any(_under(cwd, d) and cwd != d for d in COVERED_DIRS):
        # the cwd is hidden under a guest tmpfs: show the host's directory, read-only
        host_mounts.append((cwd, "ro"))
    for path, mode in sorted(host_mounts, key=lambda pm: pm[0].count("/")):
        lines += [
            f"mkdir -p {q(path)} 2>/dev/null",
            f"mount -t hostfs -o {mode},{q(path)} hostfs {q(path)} || die {q(f'mount hostfs {mode} {path}')}",
        ]
    # the command
    env_args = " ".join(q(f"{k}={v}") for k, v in env.items())
    argv_q = " ".join(q(a) for a in argv)
    lines += [
        f"cd {q(cwd)} || die {q('cd ' + cwd)}",
        'say "READY $(uname -r)"',
        f"env -i {env_args} /bin/sh -c 'exec \"$@\"' sh {argv_q} </dev/null >/run/umlrun/out/output 2>&1",
        "rc=$?",
        "echo $rc > /run/umlrun/out/rc",
        'say "EXIT $rc"',
        f"umount {q(scratch)}",
        "poweroff_now",
    ]
    return stage1, "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the runner


def run_in_uml(
    argv: Sequence[str],
    *,
    timeout: float = 300,
    mem: str = "1024M",
    env: Mapping[str, str] | None = None,
    modules: Sequence[str] = DEFAULT_MODULES,
    cwd: str | os.PathLike | None = None,
    scratch: str | os.PathLike | None = None,
    boot_timeout: float | None = None,
    disks: Sequence[str | os.PathLike] = (),
) -> UMLResult:
    """Boot a UML guest on the host's root (read-only), run `argv`, return its result.

    argv     the command, resolved through env's PATH inside the guest.
    timeout  wall seconds for the whole run (boot + command); on expiry the UML process
             tree is SIGKILLed and UMLTimeout is raised.
    mem      guest RAM (UML `mem=`).
    env      the command's environment (None: this process's environment, like subprocess).
    modules  kernel modules to insmod from /usr/lib/uml/modules/<version> (status in .modules).
    cwd      the command's working directory (default: the caller's cwd).
    scratch  host directory that is mounted read-write at the same path in the guest, and
             named to the command in $UMLRUN_SCRATCH (unless env sets that itself).
             None: a new temp dir, returned as result.scratch (call result.cleanup()).
    boot_timeout  seconds to wait for the guest to be ready (default min(timeout, 120)).
    disks    host image files given to the guest as block devices /dev/ubda, /dev/ubdb, ...

    Raises UMLNotAvailable, UMLBootError, UMLTimeout or UMLError; never hangs past timeout.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    kernel = find_kernel()
    _mem_bytes(mem)
    cwd = os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd())
    env = dict(os.environ if env is None else env)
    for k in env:
        if not k or "=" in k:
            raise ValueError(f"bad environment variable name {k!r}")
    if boot_timeout is None:
        boot_timeout = min(timeout, 120.0)

    scratch_is_temporary = scratch is None
    scratch_path = pathlib.Path(tempfile.mkdtemp(prefix="umlrun-scratch-") if scratch is None else scratch)
    scratch_path = scratch_path.resolve()
    scratch_path.mkdir(parents=True, exist_ok=True)
    _check_mount_path(str(scratch_path), "scratch")
    _check_mount_path(cwd, "cwd")

    ctl = pathlib.Path(tempfile.mkdtemp(prefix="umlrun-ctl-")).resolve()
    if _under(str(ctl), "/dev"):
        shutil.rmtree(ctl, ignore_errors=True)
        ctl = pathlib.Path(tempfile.mkdtemp(prefix="umlrun-ctl-", dir="/tmp")).resolve()
    _check_mount_path(str(ctl), "control dir")
    try:
        outdir = ctl / "out"
        outdir.mkdir()
        (ctl / "umldir").mkdir()
        nonce = secrets.token_hex(6)
        version = _kernel_version(kernel)
        plan = _module_plan(version, modules) if modules else []
        env.setdefault("UMLRUN_SCRATCH", str(scratch_path))
        stage1, stage2 = _init_script(
            nonce=nonce,
            argv=list(argv),
            env=env,
            cwd=cwd,
            scratch=str(scratch_path),
            outdir_host=str(outdir),
            stage2_host=str(ctl / "stage2"),
            busybox=_find_busybox(),
            module_plan=plan,
        )
        (ctl / "stage2").write_text(stage2)
        init = ctl / "init"
        init.write_text(stage1)
        init.chmod(0o755)

        cmdline = [
            kernel,
            f"mem={mem}",
            "rootfstype=hostfs",
            "rootflags=/",
            "ro",
            f"init={init}",
            "con=null",
            "con0=null,fd:1",
            "ssl=null",
            f"uml_dir={ctl / 'umldir'}",
            f"umid=umlrun-{nonce}",
            "noreboot",
            "panic=1",
        ]
        for index, disk in enumerate(disks):
            image = os.path.abspath(os.fspath(disk))
            if not os.path.isfile(image) or "," in image or " " in image:
                raise ValueError(f"disk {image!r} must be an existing file without ',' or spaces in its path")
            cmdline.append(f"ubd{index}={image}")
        return _boot_and_wait(
            cmdline,
            _uml_host_env(mem), nonce, outdir, timeout, boot_timeout, scratch_path, scratch_is_temporary,
            shlex.join(argv),
        )
    except BaseException:
        if scratch_is_temporary:
            shutil.rmtree(scratch_path, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(ctl, ignore_errors=True)


def _boot_and_wait(cmdline, uml_env, nonce, outdir, timeout, boot_timeout, scratch_path, scratch_is_temporary, what):
    marker = re.compile(rf"UMLRUN-{nonce}-(READY|EXIT|ERROR|MODULE|CGROUP|WARN)\b ?(.*)")
    console_lines: list[str] = []
    ready = threading.Event()
    state: dict = {"modules": {}, "kernel": "", "exit": None, "error": None, "t_ready": None}

    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmdline,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session + process group: killable as a whole
            cwd="/",
            env=uml_env,
        )
    except OSError as e:
        raise UMLNotAvailable(f"cannot start {cmdline[0]}: {e}") from e

    def reader() -> None:
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            console_lines.append(line)
            mm = marker.search(line)
            if not mm:
                continue
            kind, rest = mm.group(1), mm.group(2).strip()
            if kind == "READY":
                state["kernel"] = rest
                state["t_ready"] = time.monotonic()
                ready.set()
            elif kind == "EXIT":
                try:
                    state["exit"] = int(rest)
                except ValueError:
                    pass
            elif kind == "ERROR":
                state["error"] = rest
            elif kind == "MODULE":
                name, _, status = rest.partition(" ")
                state["modules"][name] = status

    th = threading.Thread(target=reader, name="umlrun-console", daemon=True)
    th.start()

    def console() -> str:
        return "\n".join(console_lines)

    try:
        # Phase 1: boot.  Ends when the guest prints READY, or UML exits, or time runs out.
        boot_deadline = t0 + boot_timeout
        while not ready.is_set():
            if proc.poll() is not None:
                break
            left = boot_deadline - time.monotonic()
            if left <= 0:
                break
            ready.wait(min(left, 0.25))
        if not ready.is_set():
            exited = proc.poll()
            _kill_tree(proc)
            th.join(5)
            why = state["error"] or (
                f"UML exited with status {exited} before the command started"
                if exited is not None
                else f"guest not ready after {boot_timeout:.0f}s"
            )
            raise UMLBootError(f"UML guest failed to boot: {why}", console(), proc.pid)

        # Phase 2: the command.  UML exits when the guest powers off.
        try:
            proc.wait(timeout=max(0.0, t0 + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            th.join(5)
            partial = _read_text(outdir / "output")
            raise UMLTimeout(
                f"command {what} timed out after {timeout}s; UML process tree killed",
                console(),
                output=partial,
                pid=proc.pid,
            ) from None
        wall = time.monotonic() - t0
    finally:
        _kill_tree(proc)  # stragglers (none expected after a clean power-off)
        th.join(5)
        if proc.stdout:
            proc.stdout.close()

    output = _read_text(outdir / "output")
    rc_text = _read_text(outdir / "rc").strip()
    exit_code = int(rc_text) if rc_text.lstrip("-").isdigit() else state["exit"]
    if state["error"] is not None:
        raise UMLError(f"guest init failed: {state['error']}", console(), proc.pid)
    if exit_code is None:
        raise UMLError("the guest did not report the command's exit status (crash or panic?)", console(), proc.pid)
    return UMLResult(
        exit_code=exit_code,
        output=output,
        boot_seconds=state["t_ready"] - t0,
        guest_kernel=state["kernel"],
        scratch=scratch_path,
        wall_seconds=wall,
        modules=dict(state["modules"]),
        console=console(),
        scratch_is_temporary=scratch_is_temporary,
    )


def _read_text(path: pathlib.Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------- CLI


def main(args: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="umlrun.py",
        description="Run a command inside a user-mode Linux guest booted on the host's root (read-only).",
        usage="%(prog)s [--mem 1024M] [--timeout 300] [options] -- cmd args...",
    )
    p.add_argument("--mem", default="1024M", help="guest RAM (default 1024M)")
    p.add_argument("--timeout", type=float, default=300, help="seconds for boot + command (default 300)")
    p.add_argument("--scratch", help="host dir mounted read-write at the same path (default: a temp dir)")
    p.add_argument("--module", action="append", dest="modules", metavar="NAME",
                   help="kernel module to load (repeatable; default: overlay, veth)")
    p.add_argument("--no-modules", action="store_true", help="load no kernel modules")
    p.add_argument("--console", action="store_true", help="print the guest console log to stderr")
    p.add_argument("--stats", action="store_true", help="print boot/wall seconds and kernel to stderr")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    ns = p.parse_args(args)
    cmd = ns.cmd[1:] if ns.cmd[:1] == ["--"] else ns.cmd
    if not cmd:
        p.error("no command given (put it after --)")
    modules = [] if ns.no_modules else (ns.modules or list(DEFAULT_MODULES))
    try:
        r = run_in_uml(cmd, timeout=ns.timeout, mem=ns.mem, modules=modules, scratch=ns.scratch)
    except UMLError as e:
        print(f"umlrun: {e}", file=sys.stderr)
        return 125
    try:
        sys.stdout.write(r.output)
        sys.stdout.flush()
        if ns.console:
            print(r.console, file=sys.stderr)
        if ns.stats:
            print(
                f"umlrun: kernel {r.guest_kernel} boot {r.boot_seconds:.2f}s wall {r.wall_seconds:.2f}s "
                f"modules {r.modules}",
                file=sys.stderr,
            )
    finally:
        if ns.scratch is None:
            r.cleanup()
    return r.exit_code


if __name__ == "__main__":
    sys.exit(main())
