"""Tests for the UML harness itself: every test boots a real user-mode Linux guest.

Nothing is mocked and nothing is skipped: on a machine where UML cannot run, run_in_uml
raises (UMLNotAvailable / UMLBootError, with the console tail) and the test fails with
that reason.  Guest-side checks are small Python programs run with this interpreter
(visible in the guest through the read-only hostfs root); they print JSON and the
assertions happen here, so a failure shows what the guest actually saw.

Run:  python3 -m pytest -p no:cacheprovider Tests/uml -v      (as root, like CI)
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import sys
import textwrap
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import umlrun  # noqa: E402
from umlrun import UMLBootError, UMLNotAvailable, UMLTimeout, run_in_uml  # noqa: E402

PY = os.path.realpath(sys.executable)
GUEST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}


def guest_python(code: str, scratch: pathlib.Path, **kw) -> tuple[umlrun.UMLResult, dict]:
    """Run `code` with this interpreter in a fresh guest; it must print one JSON object last."""
    r = run_in_uml([PY, "-c", textwrap.dedent(code)], env=GUEST_ENV, scratch=scratch,
                   timeout=kw.pop("timeout", 120), **kw)
    try:
        data = json.loads(r.output.strip().splitlines()[-1])
    except (IndexError, ValueError):
        pytest.fail(f"guest program printed no JSON (exit {r.exit_code}):\n{r.output}\n--- console ---\n{r.console[-3000:]}")
    return r, data


def test_exit_code_output_env_cwd_and_scratch(tmp_path):
    (tmp_path / "from-host.txt").write_text("written on the host\n")
    scratch = tmp_path / "scratch"
    r = run_in_uml(
        ["sh", "-c",
         'echo "out:$(uname -n):$(uname -r):$FOO:$(pwd)"; cat from-host.txt; echo err >&2; '
         'echo from-guest > "$SCRATCH/made-in-guest"; touch ./not-writable 2>/dev/null || echo cwd-ro; exit 7'],
        env={**GUEST_ENV, "FOO": "a b$c", "SCRATCH": str(scratch)},
        cwd=tmp_path,
        scratch=scratch,
        timeout=120,
    )
    assert r.exit_code == 7, r.console[-3000:]
    lines = r.output.splitlines()
    # hostname "uml" and the guest kernel prove it ran in the guest, not on the host
    assert lines[0] == f"out:uml:{r.guest_kernel}:a b$c:{tmp_path}", r.output
    assert "written on the host" in lines
    assert "err" in lines
    assert "cwd-ro" in lines  # the cwd is visible read-only, only scratch is writable
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", r.guest_kernel), r.guest_kernel
    assert r.guest_kernel != os.uname().release
    assert (scratch / "made-in-guest").read_text() == "from-guest\n"
    assert not (tmp_path / "not-writable").exists()
    assert 0 < r.boot_seconds < r.wall_seconds
    assert r.modules == {"overlay": "loaded", "veth": "loaded"}, r.console[-3000:]


def test_signal_death_is_reported_as_128_plus_signal(tmp_path):
    r = run_in_uml(["sh", "-c", "kill -KILL $$"], env=GUEST_ENV, modules=[], scratch=tmp_path, timeout=120)
    assert r.exit_code == 137, r.output


def test_cgroup2_controllers_available_to_a_child_cgroup(tmp_path):
    _, d = guest_python(
        """
        import json, os
        root = "/sys/fs/cgroup"
        child = root + "/harness-child"
        os.mkdir(child)
        out = {
            "fstype": [l.split()[2] for l in open("/proc/mounts") if l.split()[1] == root],
            "self": open("/proc/self/cgroup").read().strip(),
            "root_subtree": open(root + "/cgroup.subtree_control").read().split(),
            "child_controllers": open(child + "/cgroup.controllers").read().split(),
        }
        for f, v in [("memory.max", "33554432"), ("memory.high", "16777216"),
                     ("pids.max", "10"), ("cpu.max", "50000 100000")]:
            with open(f"{child}/{f}", "w") as fh:
                fh.write(v)
            out[f] = open(f"{child}/{f}").read().strip()
        print(json.dumps(out))
        """,
        tmp_path,
        modules=[],
    )
    assert d["fstype"] == ["cgroup2"]
    assert d["self"] == "0::/init"  # the command runs in a leaf, so root can delegate
    for c in ("memory", "pids", "cpu"):
        assert c in d["root_subtree"], d
        assert c in d["child_controllers"], d
    assert d["memory.max"] == "33554432"
    assert d["memory.high"] == "16777216"
    assert d["pids.max"] == "10"
    assert d["cpu.max"] == "50000 100000"


def test_oom_kill_is_confined_to_the_cgroup(tmp_path):
    r, d = guest_python(
        f"""
        import json, os, subprocess
        cg = "/sys/fs/cgroup/oom-victim"
        os.mkdir(cg)
        open(cg + "/memory.max", "w").write("32M")
        open(cg + "/memory.swap.max", "w").write("0")
        def enter():
            with open(cg + "/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        p = subprocess.run([{PY!r}, "-c", "x = b'x' * (200 * 1024 * 1024); print('allocated', len(x))"],
                           preexec_fn=enter, capture_output=True, text=True)
        events = dict(l.split() for l in open(cg + "/memory.events"))
        print(json.dumps({{"returncode": p.returncode, "stdout": p.stdout,
                          "events": {{k: int(v) for k, v in events.items()}},
                          "peak": int(open(cg + "/memory.peak").read()),
                          "me": open("/proc/self/cgroup").read().strip()}}))
        """,
        tmp_path,
        modules=[],
    )
    assert r.exit_code == 0, r.output  # the test script itself survived
    assert d["returncode"] in (-9, 137), d  # SIGKILL by the OOM killer
    assert "allocated" not in d["stdout"], d
    assert d["events"]["oom_kill"] >= 1, d
    assert d["peak"] <= 32 * 1024 * 1024, d
    assert d["me"] == "0::/init", d


def test_pids_max_makes_fork_fail_with_eagain(tmp_path):
    r, d = guest_python(
        """
        import errno, json, os
        cg = "/sys/fs/cgroup/fork-limited"
        os.mkdir(cg)
        open(cg + "/pids.max", "w").write("10")
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:  # the fork loop runs inside the cgroup
            open(cg + "/cgroup.procs", "w").write(str(os.getpid()))
            os.close(rd)
            forked, err = 0, None
            kids = []
            hold_r, hold_w = os.pipe()
            while forked < 1000:
                try:
                    k = os.fork()
                except OSError as e:
                    err = e.errno
                    break
                if k == 0:
                    os.close(hold_w)
                    os.read(hold_r, 1)  # parked until the loop ends
                    os._exit(0)
                kids.append(k)
                forked += 1
            os.close(hold_w)
            for k in kids:
                os.waitpid(k, 0)
            os.write(wr, json.dumps({"forked": forked, "errno": err}).encode())
            os._exit(0)
        os.close(wr)
        res = json.loads(os.read(rd, 4096))
        os.waitpid(pid, 0)
        events = dict(l.split() for l in open(cg + "/pids.events"))
        res["events_max"] = int(events["max"])
        print(json.dumps(res))
        """,
        tmp_path,
        modules=[],
    )
    assert r.exit_code == 0, r.output
    assert d["errno"] == 11, d  # EAGAIN
    assert d["forked"] == 9, d  # 10 pids: the loop process plus 9 children
    assert d["events_max"] >= 1, d


def test_unshare_user_pid_mount_namespaces(tmp_path):
    r = run_in_uml(
        ["unshare", "-U", "-r", "-p", "-f", "--mount-proc", "sh", "-c",
         'echo "pid=$$ uid=$(id -u) procs=$(ls /proc | grep -c "^[0-9]")"; cat /proc/self/uid_map'],
        env=GUEST_ENV,
        modules=[],
        scratch=tmp_path,
        timeout=120,
    )
    assert r.exit_code == 0, r.output
    first, mapping = r.output.splitlines()[:2]
    pid, uid, procs = re.fullmatch(r"pid=(\d+) uid=(\d+) procs=(\d+)", first).groups()
    assert pid == "1" and uid == "0", r.output
    assert int(procs) <= 4, r.output  # a fresh /proc: only this namespace's processes
    assert mapping.split() == ["0", "0", "1"], r.output


def test_timeout_kills_the_whole_uml_process_tree():
    start = time.monotonic()
    with pytest.raises(UMLTimeout) as exc:
        run_in_uml(["sh", "-c", "echo started; exec sleep 600"], env=GUEST_ENV, modules=[], timeout=15)
    elapsed = time.monotonic() - start
    assert elapsed < 40, elapsed
    e = exc.value
    assert e.pid, e
    assert "-READY " in e.console  # it timed out running the command, not booting
    assert not os.path.exists(f"/proc/{e.pid}"), "UML kernel process still exists"
    assert umlrun._pids_in_group(e.pid) == [], "UML helper processes left behind"


def test_missing_or_broken_kernel_fails_fast_with_the_reason(monkeypatch):
    monkeypatch.setenv("UMLRUN_KERNEL", "/nonexistent/linux.uml")
    with pytest.raises(UMLNotAvailable, match="not an executable"):
        run_in_uml(["true"])
    monkeypatch.setenv("UMLRUN_KERNEL", "/bin/false")
    start = time.monotonic()
    with pytest.raises(UMLBootError, match="exited with status 1 before the command started"):
        run_in_uml(["true"], timeout=60)
    assert time.monotonic() - start < 30
