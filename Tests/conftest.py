"""Fixtures and preconditions shared by every Python suite under Tests/.

The helpers themselves live in Tests/harness/claworc_harness.py, an ordinary module that test
files import; this file only puts Tests/harness and Tests/uml on the import path, checks the
preconditions once, defines the fixtures and prints the conformance summary line.
"""
import os
import pathlib
import shutil
import sys
import tempfile

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
for helper_dir in (TESTS / "harness", TESTS / "uml"):
    if str(helper_dir) not in sys.path:
        sys.path.insert(0, str(helper_dir))

from claworc_harness import BINARY, Daemon, bootstrap_admin  # noqa: E402


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("the suite needs root: it creates real namespaces and mounts")
    if not BINARY.exists():
        raise pytest.UsageError(f"{BINARY} is missing; build first (see README)")


def _fresh_base():
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-test-"))
    base.chmod(0o711)   # instances run as unprivileged host ids and must reach their storage
    return base


@pytest.fixture
def data_dir():
    base = _fresh_base()
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon(data_dir):
    d = Daemon(data_dir).start()
    yield d
    d.stop()


@pytest.fixture
def admin(daemon):
    return bootstrap_admin(daemon)


@pytest.fixture(scope="module")
def shared_daemon():
    """One daemon per module for the slower tests that share a running instance."""
    base = _fresh_base()
    d = Daemon(base / "data").start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_admin(shared_daemon):
    return bootstrap_admin(shared_daemon)


# ---- the conformance summary line -----------------------------------------------------------

CONFORMANCE = TESTS / "conformance"
_outcomes = {}


def _is_conformance(report):
    return report.fspath and CONFORMANCE in pathlib.Path(str(report.fspath)).resolve().parents


def pytest_runtest_logreport(report):
    if not _is_conformance(report):
        return
    current = _outcomes.get(report.nodeid, "passed")
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and current != "failed":
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and current != "failed":
        _outcomes[report.nodeid] = "passed"


def pytest_terminal_summary(terminalreporter):
    if not _outcomes:
        return
    values = list(_outcomes.values())
    line = f"conformance: {values.count('passed')} passed, {values.count('failed')} failed"
    if values.count("skipped"):
        line += f", {values.count('skipped')} skipped (a skip is not a pass)"
    terminalreporter.write_line(line)
