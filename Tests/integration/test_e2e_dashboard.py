"""End-to-end: drive the dashboard in headless Chromium against a running Claworc daemon.

setup -> list -> logout -> login -> create -> start -> live VNC view shows Chromium's UI ->
take control and release it -> files -> logs (live, restart from the services panel, filter, pause) -> stop -> delete.

Needs the `daemon` fixture (Tests/conftest.py): a fresh, not yet set up daemon; Selenium (`pip install "selenium<4.52"`) and
Debian's `chromium` + `chromium-driver` (override with $CHROMIUM_BIN / $CHROMEDRIVER).
Every wait is an explicit WebDriverWait; nothing sleeps. A screenshot of the live instance goes
to Tests/integration/artifacts/e2e-instance.png; on failure, e2e-failure.png, the page's HTML and
the browser console log land there too.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from claworc_harness import Client

from selenium import webdriver  # noqa: E402  (a missing Selenium is an error, never a skip)
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-Correct-Horse-42"
INSTANCE = "e2e-one"

SHORT = 15      # page changes, form round trips
LONG = 60       # instance start/stop, VNC connect, first frame

# Samples the whole canvas on a grid (about 80x80 points) and counts distinct RGB colours.
# Returns -1 while there is no canvas or it has no size yet.
COUNT_COLOURS_JS = """
const canvas = document.querySelector('#vnc-screen canvas');
if (!canvas || !canvas.width || !canvas.height) return -1;
const w = canvas.width, h = canvas.height;
const data = canvas.getContext('2d').getImageData(0, 0, w, h).data;
const stepX = Math.max(1, Math.floor(w / 80)), stepY = Math.max(1, Math.floor(h / 80));
const seen = new Set();
for (let y = 0; y < h; y += stepY) {
    for (let x = 0; x < w; x += stepX) {
        const i = (y * w + x) * 4;
        seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
}
return seen.size;
"""

CANVAS_SIZE_JS = """
const canvas = document.querySelector('#vnc-screen canvas');
return canvas ? [canvas.width, canvas.height, canvas.clientWidth, canvas.clientHeight] : null;
"""


@pytest.fixture
def driver():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"cannot run: needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


# --------------------------------------------------------------------------- helpers

def wait(drv, timeout=SHORT):
    return WebDriverWait(drv, timeout, poll_frequency=0.25,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))


def path_of(drv) -> str:
    return urlsplit(drv.current_url).path


def wait_path(drv, pattern: str, timeout=SHORT):
    rx = re.compile(pattern)
    wait(drv, timeout).until(lambda d: rx.fullmatch(path_of(d)),
                             f"expected a page matching {pattern!r}")


def visible(drv, css: str, timeout=SHORT):
    return wait(drv, timeout).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)),
                                    f"{css} never became visible")


def clickable(drv, css: str, timeout=SHORT):
    return wait(drv, timeout).until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)),
                                    f"{css} never became clickable")


def fill(drv, css: str, value: str):
    el = visible(drv, css)
    el.clear()
    el.send_keys(value)


def text_is(css: str, expected: str):
    def check(drv):
        return drv.find_element(By.CSS_SELECTOR, css).text.strip() == expected
    return check


def page_errors(drv) -> str:
    """Visible `.error` texts, for assertion messages."""
    try:
        return " | ".join(e.text for e in drv.find_elements(By.CSS_SELECTOR, ".error") if e.is_displayed())
    except WebDriverException:
        return ""


def save_failure_artifacts(drv):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        drv.save_screenshot(str(ARTIFACTS / "e2e-failure.png"))
        (ARTIFACTS / "e2e-failure.html").write_text(drv.page_source)
        logs = drv.get_log("browser")
        (ARTIFACTS / "e2e-failure-console.txt").write_text(
            "\n".join(f"{e.get('level')} {e.get('message')}" for e in logs))
    except WebDriverException:
        pass


# --------------------------------------------------------------------------- the test

def test_dashboard_end_to_end(daemon, driver):
    try:
        run_scenario(daemon, driver)
    except BaseException:
        save_failure_artifacts(driver)
        raise


def files_tab(server, drv):
    iid = int(re.search(r"/instances/(\d+)", path_of(drv)).group(1))
    api = Client(server)
    api.login(ADMIN_USER, ADMIN_PASSWORD)
    clickable(drv, "#tab-files").click()
    visible(drv, "#files-panel")
    local = Path(tempfile.mkdtemp(prefix="e2e-upload-"))
    try:
        for name, text in (("hello.txt", "hello from the dashboard\n"), ("notes.md", "# notes\n")):
            (local / name).write_text(text)
        picker = drv.find_element(By.CSS_SELECTOR, "#files-upload-input")
        drv.execute_script("arguments[0].hidden = false", picker)
        picker.send_keys(f"{local / 'hello.txt'}\n{local / 'notes.md'}")
        for name in ("hello.txt", "notes.md"):
            wait(drv).until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#files-rows tr[data-name="{name}"]'),
                            f"{name} never appeared after the upload")
    finally:
        shutil.rmtree(local, ignore_errors=True)
    inside = api.post(f"/api/v1/instances/{iid}/exec", {"argv": ["ls", "/home/claworc"]}).json()
    assert {"hello.txt", "notes.md"} <= set(inside["output"].split()), inside

    clickable(drv, "#files-new-folder").click()
    prompt = wait(drv).until(EC.alert_is_present(), "New folder did not ask for a name")
    prompt.send_keys("reports")
    prompt.accept()
    wait(drv).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#files-rows tr[data-name="reports"][data-type="dir"]'))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(ARTIFACTS / "e2e-files.png"))

    clickable(drv, '#files-rows tr[data-name="hello.txt"] [data-action="rename"]').click()
    prompt = wait(drv).until(EC.alert_is_present(), "Rename did not ask for a name")
    prompt.send_keys("greeting.txt")
    prompt.accept()
    wait(drv).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#files-rows tr[data-name="greeting.txt"]'))

    clickable(drv, '#files-rows tr[data-name="greeting.txt"] [data-action="edit"]').click()
    area = visible(drv, "#files-editor-text")
    wait(drv).until(lambda d: area.get_attribute("value") == "hello from the dashboard\n")
    area.send_keys("edited in the browser")
    clickable(drv, "#files-editor-save").click()
    wait(drv).until(lambda d: not d.find_element(By.CSS_SELECTOR, "#files-editor").is_displayed())
    saved = api.get(f"/api/v1/instances/{iid}/files/content?path=/greeting.txt").text
    assert saved.endswith("edited in the browser") and saved.startswith("hello from the dashboard"), saved

    delete = '#files-rows tr[data-name="notes.md"] [data-action="delete"]'
    clickable(drv, delete).click()
    wait(drv).until(text_is(delete, "Really delete?"))
    assert drv.find_elements(By.CSS_SELECTOR, '#files-rows tr[data-name="notes.md"]'), "deleted without asking twice"
    clickable(drv, delete).click()
    wait(drv).until(lambda d: not d.find_elements(By.CSS_SELECTOR, '#files-rows tr[data-name="notes.md"]'))
    assert not page_errors(drv), page_errors(drv)


VNC_SUP_LINES = '#logs-view .log-line[data-service="vnc"][data-stream="init"]'


def logs_tab(server, drv):
    """The Logs tab follows the services' logs live: restarting vnc from the services panel
    brings the supervisor's lines about it onto the page by themselves; filter; pause."""
    clickable(drv, "#tab-logs").click()
    visible(drv, "#logs-panel")
    wait(drv).until(lambda d: d.find_element(By.CSS_SELECTOR, "#logs-status").get_attribute("data-state") == "live",
                    "the log stream never went live")
    wait(drv).until(lambda d: d.find_elements(By.CSS_SELECTOR, VNC_SUP_LINES), "no tail of vnc's supervisor lines")
    before = len(drv.find_elements(By.CSS_SELECTOR, VNC_SUP_LINES))
    clickable(drv, '#services-panel tr[data-service="vnc"] button').click()

    def vnc_ready_again(d):
        lines = d.find_elements(By.CSS_SELECTOR, VNC_SUP_LINES)[before:]
        return any(" ready" in l.text for l in lines)
    wait(drv, LONG).until(vnc_ready_again, "vnc's restart never showed up in the Logs tab")
    wait(drv, LONG).until(lambda d: d.find_element(By.CSS_SELECTOR, '#services-panel tr[data-service="vnc"]')
                          .get_attribute("data-state") == "ready", "vnc not ready again in the services panel")

    fill(drv, "#logs-filter", "ready")
    wait(drv).until(lambda d: all("ready" in l.text or "ready" in l.get_attribute("data-service")
                                  for l in d.find_elements(By.CSS_SELECTOR, "#logs-view .log-line")), "the filter kept other lines")
    assert drv.find_elements(By.CSS_SELECTOR, "#logs-view .log-line"), "the filter hid every line"
    visible(drv, "#logs-filter").clear()
    drv.execute_script("document.querySelector('#logs-filter').dispatchEvent(new Event('input'))")

    clickable(drv, "#logs-pause").click()
    wait(drv).until(text_is("#logs-pause", "Resume"))
    shown = len(drv.find_elements(By.CSS_SELECTOR, "#logs-view .log-line"))
    api = Client(server)
    api.login(ADMIN_USER, ADMIN_PASSWORD)
    iid = int(re.search(r"/instances/(\d+)", path_of(drv)).group(1))
    assert api.post(f"/api/v1/instances/{iid}/services/vnc/restart").status_code == 200
    wait(drv, LONG).until(lambda d: "new" in d.find_element(By.CSS_SELECTOR, "#logs-status").text,
                          "nothing was held while paused")
    assert len(drv.find_elements(By.CSS_SELECTOR, "#logs-view .log-line")) == shown, "lines were added while paused"
    clickable(drv, "#logs-pause").click()
    wait(drv).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#logs-view .log-line")) > shown,
                    "resuming did not show the held lines")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(ARTIFACTS / "e2e-logs.png"))
    assert not page_errors(drv), page_errors(drv)


def run_scenario(server, drv):
    base = server.base_url.rstrip("/")
    row = f'tr[data-instance-name="{INSTANCE}"]'

    # 1. A fresh appliance sends the first visitor to /setup.
    drv.get(base + "/")
    wait_path(drv, r"/setup")
    fill(drv, "#setup-code", server.setup_code().strip())
    fill(drv, "#setup-username", ADMIN_USER)
    fill(drv, "#setup-password", ADMIN_PASSWORD)
    fill(drv, "#setup-password2", ADMIN_PASSWORD)
    clickable(drv, "#setup-submit").click()

    # 2. Setup signs the admin in and lands on the instance list.
    wait(drv).until(lambda d: path_of(d) == "/" or page_errors(d), "setup did not finish")
    assert path_of(drv) == "/", f"setup failed: {page_errors(drv)}"
    visible(drv, "#create-name")
    wait(drv).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#current-user"), ADMIN_USER))

    # 3. Log out, then back in through /login.
    clickable(drv, "#logout").click()
    wait_path(drv, r"/login")
    fill(drv, "#login-username", ADMIN_USER)
    fill(drv, "#login-password", ADMIN_PASSWORD)
    clickable(drv, "#login-submit").click()
    wait(drv).until(lambda d: path_of(d) == "/" or page_errors(d), "login did not finish")
    assert path_of(drv) == "/", f"login failed: {page_errors(drv)}"

    # 4. Create the instance; it appears stopped.
    fill(drv, "#create-name", INSTANCE)
    clickable(drv, "#create-submit").click()
    wait(drv).until(lambda d: d.find_elements(By.CSS_SELECTOR, row) or page_errors(d),
                    "the new instance never appeared")
    assert drv.find_elements(By.CSS_SELECTOR, row), f"create failed: {page_errors(drv)}"
    wait(drv).until(text_is(f'{row} [data-field="state"]', "stopped"))

    # 5. Start it and wait for running.
    clickable(drv, f'{row} [data-action="start"]').click()
    wait(drv, LONG).until(text_is(f'{row} [data-field="state"]', "running"),
                          f"{INSTANCE} never reached running")

    # 6. Open its page: noVNC connects and draws the remote display.
    clickable(drv, f'{row} a[href^="/instances/"]').click()
    wait_path(drv, r"/instances/\d+")
    wait(drv, LONG).until(text_is("#instance-state", "running"))
    wait(drv, LONG).until(text_is("#vnc-status", "connected"), "the VNC view never connected")
    wait(drv, LONG).until(
        lambda d: (lambda s: s and s[0] > 0 and s[1] > 0 and s[2] > 0 and s[3] > 0)(d.execute_script(CANVAS_SIZE_JS)),
        "no sized canvas inside #vnc-screen")

    # Chromium's UI on the remote screen means several colours, not a blank framebuffer.
    colours = {"n": -1}

    def enough_colours(d):
        colours["n"] = d.execute_script(COUNT_COLOURS_JS)
        return colours["n"] >= 3

    wait(drv, LONG).until(enough_colours, "the remote screen stayed blank")
    assert drv.find_element(By.CSS_SELECTOR, "#vnc-status").text.strip() == "connected"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(ARTIFACTS / "e2e-instance.png"))

    # 6a. Watching by default; take control, then release it.
    wait(drv).until(text_is("#control-status", "Watching; nobody controls the screen."), "no control line")
    clickable(drv, "#control-take").click()
    wait(drv).until(text_is("#control-status", "You control the screen."),
                    f"taking control failed: {page_errors(drv)}")
    assert drv.execute_script("return document.querySelector('#control-take').hidden") is True
    clickable(drv, "#control-release").click()
    wait(drv).until(text_is("#control-status", "Watching; nobody controls the screen."),
                    f"releasing control failed: {page_errors(drv)}")

    # 6b. The Files tab: upload, see it inside the instance, new folder, rename, edit, delete.
    files_tab(server, drv)
    # 6c. The Logs tab and the services panel. No OpenClaw is installed here: the agent's
    # banner names the remedy.
    banner = visible(drv, "#agent-banner")
    assert "an admin installs one under Agent" in banner.text and banner.get_attribute("data-state") == "failed"
    logs_tab(server, drv)
    clickable(drv, "#tab-browser").click()
    visible(drv, "#vnc-screen")

    # 7. Back to the list; stop, then delete.
    drv.back()
    wait_path(drv, r"/")
    clickable(drv, f'{row} [data-action="stop"]').click()
    wait(drv, LONG).until(text_is(f'{row} [data-field="state"]', "stopped"),
                          f"{INSTANCE} never stopped")
    clickable(drv, f'{row} [data-action="delete"]').click()
    alert = wait(drv).until(EC.alert_is_present(), "Delete did not ask for confirmation")
    assert INSTANCE in alert.text
    alert.accept()
    wait(drv).until(lambda d: not d.find_elements(By.CSS_SELECTOR, row) or page_errors(d),
                    "the deleted instance is still listed")
    assert not drv.find_elements(By.CSS_SELECTOR, row), f"delete failed: {page_errors(drv)}"
