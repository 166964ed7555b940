"""Checks 25-29: real cgroup v2 limits, exercised inside user-mode Linux (the build hosts'
cgroup tree is hybrid, without v2 controllers). One guest boot runs all five checks; each
check is its own test here and fails with the guest's own explanation."""
import os
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
from umlrun import run_in_uml

BINARY = os.environ.get("CLAWORC_BIN", str(ROOT / ".build" / "debug" / "claworc"))


@pytest.fixture(scope="module")
def guest():
    result = run_in_uml([sys.executable, str(ROOT / "Tests" / "conformance" / "uml_cgroup_checks.py"), BINARY],
                        timeout=900, mem="2048M", cwd=str(ROOT))
    lines = {}
    for line in result.output.splitlines():
        m = re.match(r"(PASS|FAIL) (\d+) (\w+): (.*)", line)
        if m:
            lines[int(m.group(2))] = (m.group(1), m.group(3), m.group(4))
    print(result.output[-4000:])
    return result, lines


@pytest.mark.parametrize("number", [25, 26, 27, 28, 29])
def test_cgroup_check_in_uml(guest, number):
    result, lines = guest
    assert number in lines, f"check {number} did not run in the guest; output tail:\n{result.output[-3000:]}"
    verdict, name, detail = lines[number]
    assert verdict == "PASS", f"check {number} {name}: {detail}"
