"""End-to-end: the instance page's Terminal tab in headless Chromium against a real daemon.

Type a command and see its output; reload the page and find the same session with its
scrollback; `kill -9` the daemon and start it again on the same port: the open page
re-attaches to the same shell on its own, keeping what it showed; upload a file through the
files API and see it with `ls`. Same browser setup as
test_e2e_dashboard (its `driver` fixture and wait helpers); every wait is an explicit
WebDriverWait on what the page shows.
"""
from __future__ import annotations

import pytest

from claworc_harness import bootstrap_admin
from selenium.webdriver.common.by import By
from test_e2e_dashboard import clickable, driver, save_failure_artifacts, visible, wait  # noqa: F401  (driver: fixture)

LONG = 60


@pytest.fixture
def server(data_dir):
    from claworc_harness import Daemon
    d = Daemon(data_dir, extra_args=["--instance-services", "none"]).start()
    yield d
    d.stop()


def screen_text(drv) -> str:
    return drv.find_element(By.CSS_SELECTOR, "#terminal-screen .xterm-rows").text


def open_terminal(drv):
    clickable(drv, "#tab-terminal").click()
    wait(drv, LONG).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#terminal-status").get_attribute("data-state") == "connected",
        "the terminal never connected")
    return drv.find_element(By.CSS_SELECTOR, "#terminal-status").get_attribute("data-session")


def type_line(drv, line: str):
    clickable(drv, "#terminal-screen").click()
    drv.switch_to.active_element.send_keys(line + "\n")


def shows(drv, text: str, what: str, timeout=30):
    wait(drv, timeout).until(lambda d: text in screen_text(d), f"the terminal never showed {what}")


def test_terminal_tab(server, driver):
    try:
        run(server, driver)
    except BaseException:
        save_failure_artifacts(driver)
        raise


def run(server, drv):
    admin = bootstrap_admin(server)
    iid = admin.create("e2e-term")["id"]
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    admin.wait_for(iid, lambda i: i["state"] == "running", what="running")

    drv.get(server.base_url + "/")
    drv.add_cookie({"name": "claworc_session", "value": admin.http.cookies.get("claworc_session"), "path": "/"})
    drv.get(f"{server.base_url}/instances/{iid}")
    visible(drv, "#tab-terminal", LONG)

    sid = open_terminal(drv)
    assert sid and len(sid) == 32
    type_line(drv, "echo e2e-$((6*7))")
    shows(drv, "e2e-42", "the command's output")

    # Reload: the same session comes back with what it showed before.
    drv.refresh()
    assert open_terminal(drv) == sid, "the reloaded page opened another session"
    shows(drv, "e2e-42", "the scrollback after a reload")

    # The daemon dies and comes back: the page says so, then re-attaches to the same shell.
    type_line(drv, "export KEPT=$((20+3))")
    server.kill()
    wait(drv, LONG).until(lambda d: d.find_element(By.CSS_SELECTOR, "#terminal-status").get_attribute("data-state")
                          == "disconnected", "the page never noticed the daemon was gone")
    server.start(same_port=True)
    wait(drv, LONG).until(lambda d: d.find_element(By.CSS_SELECTOR, "#terminal-status").get_attribute("data-state")
                          == "connected", "the page never re-attached after the restart")
    assert drv.find_element(By.CSS_SELECTOR, "#terminal-status").get_attribute("data-session") == sid
    assert "e2e-42" in screen_text(drv), "the screen was cleared by a re-attach without replay"
    type_line(drv, "echo kept-$KEPT")
    shows(drv, "kept-23", "the shell's state after the daemon restart")

    # A file uploaded through the files API is there for the shell.
    r = admin.http.put(admin.url(f"/api/v1/instances/{iid}/files/content?path=uploaded-e2e.txt"),
                       data=b"hello from the files API\n", timeout=60)
    assert r.status_code == 201, r.text
    type_line(drv, "ls; cat uploaded-e2e.txt | tr a-z A-Z")
    shows(drv, "HELLO FROM THE FILES API", "the uploaded file's content")
    assert "uploaded-e2e.txt" in screen_text(drv)
