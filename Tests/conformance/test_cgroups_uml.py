"""Checks 25-29 and 40 (io.max): real cgroup v2 limits, exercised inside user-mode Linux (the
build hosts' cgroup tree is hybrid, without v2 controllers). One guest boot runs all the
checks; each is its own test here and fails with the guest's own explanation. The guest's
appliance keeps its data on an ext4 disk image of its own (/dev/ubda), so the io controller
has a real block device to limit."""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
from umlrun import run_in_uml

BINARY = os.environ.get("CLAWORC_BIN", str(ROOT / ".build" / "debug" / "claworc"))


@pytest.fixture(scope="module")
def data_disk():
    if shutil.which("mkfs.ext4") is None:
        pytest.fail("mkfs.ext4 (e2fsprogs) is needed to make the guest's data disk")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="claworc-uml-disk-"))
    image = workdir / "data.ext4"
    with open(image, "wb") as f:
        f.truncate(512 << 20)   # sparse
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(image)], check=True)
    yield image
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def guest(data_disk):
    result = run_in_uml([sys.executable, str(ROOT / "Tests" / "conformance" / "uml_cgroup_checks.py"), BINARY,
                         "/dev/ubda"], timeout=900, mem="2048M", cwd=str(ROOT), disks=[data_disk])
    lines = {}
    for line in result.output.splitlines():
        m = re.match(r"(PASS|FAIL) (\d+) (\w+): (.*)", line)
        if m:
            lines[int(m.group(2))] = (m.group(1), m.group(3), m.group(4))
    print(result.output[-4000:])
    return result, lines


@pytest.mark.parametrize("number", [25, 26, 27, 28, 29, 40, 53])
def test_cgroup_check_in_uml(guest, number):
    result, lines = guest
    assert number in lines, f"check {number} did not run in the guest; output tail:\n{result.output[-3000:]}"
    verdict, name, detail = lines[number]
    assert verdict == "PASS", f"check {number} {name}: {detail}"
