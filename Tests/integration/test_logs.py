"""The logs API (GET /api/v1/instances/{id}/logs): tails of the services' log files the init
writes, one service or all merged by time, the init's own log as service "init", the
rotated files, the event stream (follow=1) and the refusal of anything but a regular file in
the logs directory, which the instance's root writes.

Where a test writes into `<data-dir>/instances/<id>/logs` itself, the instance is STOPPED and
the lines are marked FIXTURE: they stand in for what a service would have logged over hours
(rotation at 1 MiB) or for what a hostile root inside could have left there.
"""
import json
import os
import pathlib
import queue
import threading
import time

import requests

from claworc_harness import Daemon, bootstrap_admin

STREAMS = {"stdout", "stderr", "init"}


def error_of(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"]["code"] == code, r.text


def logs(client, iid, **query):
    r = client.get(f"/api/v1/instances/{iid}/logs", params=query)
    assert r.status_code == 200, r.text
    return r.json()["lines"]


def in_order(lines):
    stamps = [l["ts"] for l in lines if l["ts"] is not None]
    return stamps == sorted(stamps)


class EventStream:
    """Reads a follow=1 response on a thread of its own; `expect` waits for a matching line."""

    def __init__(self, client, iid, **query):
        self.response = client.http.get(client.url(f"/api/v1/instances/{iid}/logs"),
                                        params={**query, "follow": "1"}, stream=True, timeout=(5, 60),
                                        headers={"Accept": "text/event-stream"})
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.events = queue.Queue()
        self.opened = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        # The first thing sent is a comment: after it the follower's position is fixed.
        assert self.opened.wait(10), "the event stream never started"

    def _read(self):
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                if raw.startswith(":"):
                    self.opened.set()
                elif raw.startswith("data: "):
                    self.events.put(json.loads(raw[6:]))
        except (requests.RequestException, AttributeError, ValueError):
            pass
        self.events.put(None)

    def expect(self, predicate, timeout=30, what="a line"):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            assert line is not None, f"the stream ended before {what}; saw {seen}"
            seen.append(line)
            if predicate(line):
                return seen
        raise AssertionError(f"no {what} within {timeout}s; saw {seen}")

    def close(self):
        self.response.close()


def test_tails_follow_and_errors(admin):
    iid = admin.create("logs")["id"]
    assert logs(admin, iid) == []   # never started: no logs directory yet, nothing to show
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    admin.wait_all_services_ready(iid)

    # One service: its lines only, in order; the supervisor's own lines about it are "init".
    vnc = logs(admin, iid, service="vnc", tail=100)
    assert vnc and all(l["service"] == "vnc" and l["stream"] in STREAMS for l in vnc), vnc
    assert in_order(vnc)
    assert any(l["stream"] == "init" and l["text"].startswith("ready") for l in vnc), vnc
    assert any(l["stream"] in ("stdout", "stderr") for l in vnc), vnc   # x11vnc's own output
    assert logs(admin, iid, service="vnc", tail=3) == vnc[-3:]

    # All services, merged by time.
    merged = logs(admin, iid, tail=5000)
    assert {"xvfb", "vnc", "chromium"} <= {l["service"] for l in merged}, merged
    assert in_order(merged)
    assert len(logs(admin, iid, tail=4)) == 4

    # The init's own log (no timestamps there).
    init = logs(admin, iid, service="init")
    assert init and all(l["service"] == "init" and l["stream"] == "init" and l["ts"] is None for l in init)
    assert any(l["text"] == "xvfb ready" or l["text"].startswith("xvfb ready ") for l in init), init

    # Follow: a restart of vnc through the services API shows up on the stream by itself.
    stream = EventStream(admin, iid, service="vnc", tail=0)
    merged_stream = EventStream(admin, iid, tail=0)
    try:
        assert admin.post(f"/api/v1/instances/{iid}/services/vnc/restart").status_code == 200
        seen = stream.expect(lambda l: l["stream"] == "init" and l["text"].startswith("ready"), what="vnc ready again")
        assert all(l["service"] == "vnc" for l in seen)
        assert any(l["text"].startswith("stopping") for l in seen), seen
        assert in_order(seen)
        merged_stream.expect(lambda l: l["service"] == "vnc" and l["text"].startswith("ready"), what="vnc in the merged stream")
    finally:
        stream.close()
        merged_stream.close()

    error_of(admin.get(f"/api/v1/instances/{iid}/logs?tail=abc"), 400, "invalid_tail")
    error_of(admin.get(f"/api/v1/instances/{iid}/logs?tail=-1"), 400, "invalid_tail")
    error_of(admin.get(f"/api/v1/instances/{iid}/logs?tail=5001"), 400, "invalid_tail")
    error_of(admin.get(f"/api/v1/instances/{iid}/logs?service=nope"), 404, "no_such_service")
    error_of(admin.get(f"/api/v1/instances/{iid}/logs?service=../instance"), 404, "no_such_service")
    error_of(admin.get(f"/api/v1/instances/{iid}/logs?follow=1"), 406, "event_stream_required")
    error_of(admin.get("/api/v1/instances/999/logs"), 404, "not_found")
    admin.post("/api/v1/auth/logout")
    error_of(admin.get(f"/api/v1/instances/{iid}/logs"), 401, "unauthorized")


def fixture_line(second, tag, text):
    return f"2026-01-01T00:00:{second:02d}.000Z {tag} FIXTURE {text}\n"


def stopped_instance_with_logs(admin, name):
    """An instance started once (so the init made its real log files), then stopped."""
    iid = admin.create(name)["id"]
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    admin.wait_all_services_ready(iid)
    assert admin.post(f"/api/v1/instances/{iid}/stop").status_code == 200
    admin.wait_for(iid, lambda i: i["state"] == "stopped", 60, "stopped")
    return iid, admin.daemon.data_dir / "instances" / str(iid) / "logs"


def test_rotated_files_and_refused_links(admin):
    iid, logs_dir = stopped_instance_with_logs(admin, "rot")
    current = (logs_dir / "vnc.log").read_text().splitlines()
    # FIXTURE: what rotation at 1 MiB leaves behind, oldest in .2.
    (logs_dir / "vnc.log.2").write_text(fixture_line(1, "out", "oldest") + fixture_line(2, "err", "older"))
    (logs_dir / "vnc.log.1").write_text(fixture_line(3, "sup", "old"))

    lines = logs(admin, iid, service="vnc", tail=5000)
    assert [l["text"] for l in lines[:3]] == ["FIXTURE oldest", "FIXTURE older", "FIXTURE old"], lines[:4]
    assert [l["stream"] for l in lines[:3]] == ["stdout", "stderr", "init"]
    assert len(lines) == 3 + len(current)
    # Only as far back as asked: the newest file alone when it holds enough.
    assert all("FIXTURE" not in l["text"] for l in logs(admin, iid, service="vnc", tail=2))
    merged = logs(admin, iid, tail=5000)
    assert in_order(merged) and merged[0]["text"] == "FIXTURE oldest"

    # FIXTURE: a hostile root inside replaced its log files by a link to a host secret and a FIFO.
    (logs_dir / "xvfb.log").unlink()
    os.symlink("/etc/shadow", logs_dir / "xvfb.log")
    (logs_dir / "chromium.log").unlink()
    os.mkfifo(logs_dir / "chromium.log")
    error_of(admin.get(f"/api/v1/instances/{iid}/logs?service=xvfb"), 403, "unsafe_log_file")
    error_of(admin.get(f"/api/v1/instances/{iid}/logs?service=chromium"), 403, "unsafe_log_file")
    shadow = set(pathlib.Path("/etc/shadow").read_text().splitlines())
    merged = logs(admin, iid, tail=5000)   # the others are still shown; the refused ones are not read
    assert {l["service"] for l in merged} == {"vnc", "agent"}   # the agent's: its failure for want of a bundle
    assert not any(l["text"] in shadow for l in merged)


def test_follow_across_rotation_outlives_idle_timeout(data_dir):
    # Idle timeout 500 ms: the stream must live on while its response is in flight.
    daemon = Daemon(data_dir, extra_args=["--unsafe-test-http-timeouts", "5000,500"]).start()
    try:
        admin = bootstrap_admin(daemon)
        iid, logs_dir = stopped_instance_with_logs(admin, "follow")
        log = logs_dir / "vnc.log"
        stream = EventStream(admin, iid, service="vnc", tail=1)
        try:
            stream.expect(lambda l: True, what="the tail line")
            # Longer than the idle timeout with nothing sent: waiting is what is under test.
            time.sleep(1.5)
            # FIXTURE lines, then a rotation as the init does it: rename, then a new file.
            with open(log, "a") as f:
                f.write(fixture_line(10, "out", "before rotation"))
            stream.expect(lambda l: l["text"] == "FIXTURE before rotation", what="the appended line")
            with open(log, "a") as f:
                f.write(fixture_line(11, "err", "last of the old file"))
            os.rename(log, logs_dir / "vnc.log.1")
            log.write_text(fixture_line(12, "out", "first of the new file"))
            seen = stream.expect(lambda l: l["text"] == "FIXTURE first of the new file", what="the new file's line")
            assert [l["text"] for l in seen] == ["FIXTURE last of the old file", "FIXTURE first of the new file"], seen
        finally:
            stream.close()
    finally:
        daemon.stop()
