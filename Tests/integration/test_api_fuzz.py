"""Schema-driven fuzzing of the API from the OpenAPI document the daemon serves: schemathesis
(pinned in scripts/install-deps.sh) generates valid and invalid requests for every operation,
as an admin and as a plain user (each with an API token: no cookie, so no Origin to forge),
and checks that no answer is a 5xx, that every answer's status, content type, headers and
body are what the document says, and that invalid input is refused with a 4xx. The daemon
must still answer /healthz afterwards and must not have died.

Bounded: a fixed number of examples per operation and a fixed seed, so both roles take about
3 minutes (debug build, busy 2-core VM) and a failure reproduces. One worker: with several,
hypothesis' threads hit a CPython 3.11 ast race and the run errors out on its own. The VNC WebSocket is left out (an HTTP fuzzer cannot
speak it; the authorization matrix covers its refusals).
"""
import importlib.util
import pathlib
import shutil
import subprocess
import tempfile
import sys

import pytest
import requests

from claworc_harness import Client, Daemon, bootstrap_admin

EXAMPLES = 6
SEED = 20261202
CHECKS = ",".join(["not_a_server_error", "status_code_conformance", "content_type_conformance",
                   "response_headers_conformance", "response_schema_conformance", "negative_data_rejection"])


@pytest.fixture
def fuzz_daemon():
    """A daemon of the test's own: the admin fuzz may well delete users or reset passwords."""
    if importlib.util.find_spec("schemathesis") is None:
        pytest.fail("schemathesis is not installed (scripts/install-deps.sh test installs it): the fuzz cannot run")
    # Not under pytest's tmp (mode 700): instances reach their storage as unprivileged ids.
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-fuzz-"))
    base.chmod(0o711)
    d = Daemon(base / "data", ["--instance-services", "none"]).start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


def token_for(client, name):
    r = client.post("/api/v1/auth/tokens", {"name": name})
    assert r.status_code == 201, r.text
    return r.json()["token"]


# Operations that can end the fuzz's own credential (revoke its token, reset or disable its
# user) run in a second pass, so that they cannot blind the first to every other operation.
SELF_ENDING = r"^/api/v1/(auth/tokens/\{token\}|users/\{user\})$"


def fuzz(daemon, token, report_dir, selection):
    """schemathesis against the daemon's own document; returns (exit code, output)."""
    proc = subprocess.run(
        [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()", "run",
         f"{daemon.base_url}/api/v1/openapi.json",
         "--header", f"Authorization: Bearer {token}",
         "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", str(SEED),
         "--phases", "examples,coverage,fuzzing", "--workers", "1", "--request-timeout", "30",
         "--suppress-health-check", "all", *selection,
         "--report", "junit", "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=600, cwd=report_dir)   # its .schemathesis cache goes there
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("role", ["admin", "user"])
def test_fuzz_finds_no_server_error_nor_a_broken_contract(fuzz_daemon, role, tmp_path):
    daemon = fuzz_daemon
    admin = bootstrap_admin(daemon)
    # Something to find: an instance the caller may see, one a user may not.
    mine = admin.create(f"fuzz-{role}-mine")
    admin.create(f"fuzz-{role}-other")
    if role == "admin":
        token = token_for(admin, "fuzz")
    else:
        r = admin.post("/api/v1/users", {"username": "fuzzer", "password": "a-good-password", "role": "user"})
        assert r.status_code == 201, r.text
        assert admin.http.put(admin.url(f"/api/v1/instances/{mine['id']}/users/{r.json()['user']['id']}"),
                              timeout=30).status_code == 204
        user = Client(daemon)
        user.login("fuzzer", "a-good-password")
        token = token_for(user, "fuzz")
    results = []
    # The WebSockets (VNC, terminal) are no HTTP an HTTP fuzzer can speak, and the events stream
    # never ends by itself; the authorization matrix and their own tests cover them.
    for name, selection in [("most", ["--exclude-path-regex", r"/vnc$|/terminal$|/chat$|/events$|" + SELF_ENDING]),
                            ("self-ending", ["--include-path-regex", SELF_ENDING])]:
        (tmp_path / name).mkdir()
        code, output = fuzz(daemon, token, tmp_path / name, selection)
        print(f"--- schemathesis as {role}, {name} operations: exit {code}\n{output[-5000:]}")
        results.append((name, code, output))
        assert daemon.proc.poll() is None, f"the daemon died during the fuzz ({name} operations)"
    assert requests.get(daemon.base_url + "/healthz", timeout=10).json() == {"status": "ok"}
    for name, code, output in results:
        assert code == 0, f"schemathesis found problems as {role} in the {name} operations (exit {code}):\n{output[-12000:]}"
