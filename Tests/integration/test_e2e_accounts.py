"""End-to-end: the Users, Account and Audit pages in headless Chromium against a real daemon.

An admin creates a user on the Users page (and meets the last-admin refusal) and assigns one of
two instances; the user signs in, sees only that instance, gets "not found" for the other's page
and a refused VNC view for its display, creates an API token on the Account page (shown once,
working, then gone), signs out another session, revokes the token, changes the password (a wrong
current password is refused; afterwards the old one no longer signs in); the admin then finds all
of it, refusals highlighted, on the Audit page, a few entries at a time.

Same prerequisites and driver as test_e2e_dashboard.py (Selenium, Debian's chromium and
chromium-driver). Every wait is a WebDriverWait on the page; nothing sleeps. On failure a
screenshot, the page's HTML and the console log go to Tests/integration/artifacts/e2e-accounts-*;
screenshots of the three pages land there on every run.
"""

from __future__ import annotations

import requests
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from claworc_harness import ADMIN, Client, bootstrap_admin
from test_e2e_dashboard import (  # noqa: F401  (driver is a fixture)
    ARTIFACTS, clickable, driver, fill, page_errors, path_of, visible, wait, wait_path,
)

USER = "carol"
PASSWORD = "carol-first-pass"
NEW_PASSWORD = "carol-second-pass"
MINE, OTHER = "acc-mine", "acc-other"

# Mounts the dashboard's own VNC view (vnc.js) on a new element for an instance's WebSocket and
# shows its state and detail in that element, as the instance page does.
MOUNT_VNC_VIEW_JS = """
const [id, elementId] = arguments;
const done = arguments[arguments.length - 1];
Promise.all([import('/static/vnc.js'), import('/static/api.js')]).then(([vnc, api]) => {
    const box = document.createElement('div');
    box.id = elementId;
    const screen = document.createElement('div');
    const status = document.createElement('p');
    status.className = 'vnc-status';
    box.append(screen, status);
    document.body.append(box);
    const view = new vnc.VncView(screen, api.vncURL(id), {
        onStatus: (state, detail) => { status.dataset.state = state; status.textContent = state + ': ' + detail; },
    });
    window.__views = (window.__views || []).concat([view]);
    view.setWanted(true);
    done(true);
}, (e) => done(String(e)));
"""


def screenshot(drv, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(ARTIFACTS / f"e2e-accounts-{name}.png"))


def save_artifacts(drv):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        drv.save_screenshot(str(ARTIFACTS / "e2e-accounts-failure.png"))
        (ARTIFACTS / "e2e-accounts-failure.html").write_text(drv.page_source)
        (ARTIFACTS / "e2e-accounts-console.txt").write_text(
            "\n".join(f"{e.get('level')} {e.get('message')}" for e in drv.get_log("browser")))
    except WebDriverException:
        pass


def test_users_account_and_audit_pages(daemon, driver):
    try:
        run_scenario(daemon, driver)
    except BaseException:
        save_artifacts(driver)
        raise


def sign_in(drv, base, username, password):
    drv.get(base + "/login")
    fill(drv, "#login-username", username)
    fill(drv, "#login-password", password)
    clickable(drv, "#login-submit").click()
    wait(drv).until(lambda d: path_of(d) == "/" or page_errors(d), f"signing in as {username} did not finish")
    assert path_of(drv) == "/", f"signing in as {username} failed: {page_errors(drv)}"
    visible(drv, "#logout")


def sign_out(drv):
    clickable(drv, "#logout").click()
    wait_path(drv, r"/login")


def go(drv, base, path, ready_css):
    drv.get(base + path)
    return visible(drv, ready_css)


def accept_confirm(drv, expect_in_text=""):
    alert = wait(drv).until(EC.alert_is_present(), "no confirmation was asked")
    text = alert.text
    alert.accept()
    assert expect_in_text in text, text
    return text


def bearer(daemon, token):
    return requests.get(daemon.base_url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def rows(drv, css):
    return drv.find_elements(By.CSS_SELECTOR, css)


def run_scenario(daemon, drv):
    base = daemon.base_url
    admin_api = bootstrap_admin(daemon)
    mine, other = admin_api.create(MINE), admin_api.create(OTHER)

    # ---- the admin: navigation, a refusal shown from the API, a new user, one assignment
    sign_in(drv, base, *ADMIN)
    for link in ("#nav-instances", "#nav-users", "#nav-audit", "#nav-account"):
        visible(drv, link)
    visible(drv, "#create-form")
    clickable(drv, "#nav-users").click()
    wait_path(drv, r"/users")
    me = visible(drv, f'#user-rows tr[data-username="{ADMIN[0]}"]')
    role = me.find_element(By.CSS_SELECTOR, 'select[data-action="role"]')
    role.find_element(By.CSS_SELECTOR, 'option[value="user"]').click()
    accept_confirm(drv, "your own account")
    error = visible(drv, "#users-error")
    wait(drv).until(lambda d: "last enabled admin" in error.text, "the last_admin refusal was not shown")
    assert role.get_attribute("value") == "admin", "the role select did not go back after the refusal"
    assert admin_api.get("/api/v1/auth/me").json()["user"]["role"] == "admin"

    fill(drv, "#user-create-username", USER)
    fill(drv, "#user-create-password", PASSWORD)
    clickable(drv, "#user-create-submit").click()
    row_css = f'#user-rows tr[data-username="{USER}"]'
    row = visible(drv, row_css)
    assert row.get_attribute("data-role") == "user" and row.get_attribute("data-disabled") == "false"
    # Reloading serves the app for /users too, and the user is really there.
    go(drv, base, "/users", row_css)
    clickable(drv, f'{row_css} [data-action="assignments"]').click()
    box_css = f'[data-assignments-for="{USER}"] input[data-instance-name="{MINE}"]'
    clickable(drv, box_css).click()
    visible(drv, f'{box_css}[data-saved="true"]')
    screenshot(drv, "users")
    other_box = drv.find_element(By.CSS_SELECTOR, f'[data-assignments-for="{USER}"] input[data-instance-name="{OTHER}"]')
    assert not other_box.is_selected()
    assigned = admin_api.get(f"/api/v1/instances/{mine['id']}/users").json()["users"]
    assert [u["username"] for u in assigned] == [USER]
    sign_out(drv)

    # ---- the user: their instance only, no admin buttons or links
    sign_in(drv, base, USER, PASSWORD)
    visible(drv, f'#instance-rows tr[data-instance-name="{MINE}"]')
    names = [r.get_attribute("data-instance-name") for r in rows(drv, "#instance-rows tr")]
    assert names == [MINE], names
    assert not rows(drv, "#create-form"), "a plain user sees the create form"
    assert not rows(drv, '#instance-rows [data-action="delete"]'), "a plain user sees Delete"
    assert not rows(drv, "#nav-users") and not rows(drv, "#nav-audit"), "a plain user sees admin links"
    visible(drv, "#nav-account")

    go(drv, base, f"/instances/{other['id']}", ".empty-title")
    assert "Instance not found" in drv.find_element(By.CSS_SELECTOR, ".empty-title").text
    go(drv, base, "/users", "#not-allowed")
    go(drv, base, "/audit", "#not-allowed")

    # The dashboard's VNC view: refused for the other instance; for their own (stopped) one the
    # daemon lets them through the checks and only says it is not running.
    assert drv.execute_async_script(MOUNT_VNC_VIEW_JS, other["id"], "view-other") is True
    assert drv.execute_async_script(MOUNT_VNC_VIEW_JS, mine["id"], "view-mine") is True
    wait(drv).until(lambda d: d.find_element(By.CSS_SELECTOR, "#view-other .vnc-status").get_attribute("data-state") == "refused",
                    "the other instance's VNC view never showed a refusal")
    refused = drv.find_element(By.CSS_SELECTOR, "#view-other .vnc-status").text
    assert "not assigned to you" in refused, refused
    wait(drv).until(lambda d: "not running" in d.find_element(By.CSS_SELECTOR, "#view-mine .vnc-status").text,
                    "the own instance's VNC view did not say it is not running")
    assert drv.find_element(By.CSS_SELECTOR, "#view-mine .vnc-status").get_attribute("data-state") != "refused"
    drv.execute_script("for (const v of window.__views) v.destroy();")

    # ---- Account: sessions (this one marked; another signed out from here)
    elsewhere = Client(daemon)
    elsewhere.login(USER, PASSWORD)
    go(drv, base, "/account", '#session-rows tr[data-current="true"]')
    wait(drv).until(lambda d: len(rows(d, "#session-rows tr")) == 2, "the second session is not listed")
    current = drv.find_element(By.CSS_SELECTOR, '#session-rows tr[data-current="true"]')
    assert "this session" in current.text and "127.0.0.1" in current.text, current.text
    assert not current.find_elements(By.CSS_SELECTOR, '[data-action="revoke"]'), "this session can be revoked from itself"
    clickable(drv, '#session-rows tr[data-current="false"] [data-action="revoke"]').click()
    wait(drv).until(lambda d: len(rows(d, "#session-rows tr")) == 1, "the other session is still listed")
    assert elsewhere.get("/api/v1/auth/me").status_code == 401, "the signed-out session still works"

    # ---- Account: an API token, shown once, working, then revoked
    fill(drv, "#token-name", "ci-script")
    fill(drv, "#token-days", "7")
    clickable(drv, "#token-create").click()
    secret_box = visible(drv, "#token-new-value")
    wait(drv).until(lambda d: secret_box.get_attribute("value"), "the new token was not shown")
    secret = secret_box.get_attribute("value")
    screenshot(drv, "account")
    assert "not be shown again" in drv.find_element(By.CSS_SELECTOR, "#token-new").text
    listed = visible(drv, '#token-rows tr[data-token-name="ci-script"]')
    assert "never" not in listed.find_elements(By.TAG_NAME, "td")[2].text, "a 7-day token shows no expiry"
    me_by_token = bearer(daemon, secret)
    assert me_by_token.status_code == 200 and me_by_token.json()["user"]["username"] == USER, me_by_token.text
    clickable(drv, "#token-dismiss").click()
    wait(drv).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "#token-new")))
    assert secret not in drv.page_source, "the token is still in the page after Done"
    go(drv, base, "/account", '#token-rows tr[data-token-name="ci-script"]')
    assert secret not in drv.page_source, "the token is shown again after a reload"
    assert not drv.find_element(By.CSS_SELECTOR, "#token-new").is_displayed()
    clickable(drv, '#token-rows tr[data-token-name="ci-script"] [data-action="revoke"]').click()
    accept_confirm(drv, "ci-script")
    visible(drv, "#tokens-empty")
    assert not rows(drv, '#token-rows tr[data-token-name="ci-script"]')
    assert bearer(daemon, secret).status_code == 401, "the revoked token still works"

    # ---- Account: password (a wrong current password is refused, then the change)
    fill(drv, "#password-current", "not-my-password")
    fill(drv, "#password-new", NEW_PASSWORD)
    fill(drv, "#password-repeat", NEW_PASSWORD)
    clickable(drv, "#password-submit").click()
    wrong = visible(drv, "#password-error")
    assert "current password is not correct" in wrong.text, wrong.text
    fill(drv, "#password-current", PASSWORD)
    fill(drv, "#password-new", NEW_PASSWORD)
    fill(drv, "#password-repeat", NEW_PASSWORD)
    clickable(drv, "#password-submit").click()
    visible(drv, "#password-done")
    # The fresh cookie keeps this browser signed in.
    go(drv, base, "/account", '#session-rows tr[data-current="true"]')
    sign_out(drv)
    fill(drv, "#login-username", USER)
    fill(drv, "#login-password", PASSWORD)
    clickable(drv, "#login-submit").click()
    refusal = visible(drv, "#login-error")
    assert refusal.text and path_of(drv) == "/login", "the old password still signs in"
    sign_in(drv, base, USER, NEW_PASSWORD)
    sign_out(drv)

    # ---- the admin's Audit page: all of it, newest first, refusals highlighted, a page at a time
    sign_in(drv, base, *ADMIN)
    clickable(drv, "#nav-audit").click()
    wait_path(drv, r"/audit")
    visible(drv, "#audit-rows tr")

    def entries(d):
        return [(r.get_attribute("data-action"), r.get_attribute("data-outcome"),
                 r.find_element(By.CSS_SELECTOR, '[data-field="actor"]').text,
                 r.find_element(By.CSS_SELECTOR, '[data-field="target"]').text,
                 int(r.get_attribute("data-entry-id"))) for r in rows(d, "#audit-rows tr")]

    seen = entries(drv)
    ids = [e[4] for e in seen]
    assert ids == sorted(ids, reverse=True), "not newest first"
    have = {(a, o, actor, target) for a, o, actor, target, _ in seen}
    for expected in [("user.create", "ok", ADMIN[0], f"user:{USER}"),
                     ("user.update", "denied", ADMIN[0], f"user:{admin_api.get('/api/v1/auth/me').json()['user']['id']}"),
                     ("instance.assign", "ok", ADMIN[0], f"instance:{mine['id']}"),
                     ("password.change", "denied", USER, f"user:{USER}"),
                     ("password.change", "ok", USER, f"user:{USER}"),
                     ("session.revoke", "ok", USER, f"user:{USER}"),
                     ("login", "denied", USER, "")]:
        assert expected in have, f"{expected} is missing from the audit page: {sorted(have)}"
    tokens = [e for e in seen if e[0] in ("token.create", "token.revoke") and e[2] == USER]
    assert {e[0] for e in tokens} == {"token.create", "token.revoke"} and len({e[3] for e in tokens}) == 1, tokens
    denied = drv.find_element(By.CSS_SELECTOR, '#audit-rows tr[data-action="password.change"][data-outcome="denied"]')
    screenshot(drv, "audit")
    assert "outcome-denied" in denied.get_attribute("class")

    # Filters, and "Load more" with a small page: the user's entries in three-entry pages.
    carol_all = [e for e in seen if e[2] == USER]
    go(drv, base, "/audit?limit=3", "#audit-rows tr")
    fill(drv, "#audit-actor", USER)
    clickable(drv, "#audit-apply").click()
    wait(drv).until(lambda d: all(e[2] == USER for e in entries(d)) and len(entries(d)) == 3,
                    "the actor filter did not apply")
    assert "actor=carol" in drv.current_url and "limit=3" in drv.current_url
    while rows(drv, "#audit-more") and drv.find_element(By.CSS_SELECTOR, "#audit-more").is_displayed():
        before = len(entries(drv))
        clickable(drv, "#audit-more").click()
        wait(drv).until(lambda d: len(entries(d)) > before or not d.find_element(By.CSS_SELECTOR, "#audit-more").is_displayed(),
                        "Load more did not load")
    paged = entries(drv)
    assert [e[4] for e in paged] == [e[4] for e in carol_all], (paged, carol_all)
    assert len(paged) > 3

    # A filter that matches nothing says so.
    fill(drv, "#audit-action", "no.such.action")
    clickable(drv, "#audit-apply").click()
    wait(drv).until(lambda d: "No entries match" in d.find_element(By.CSS_SELECTOR, "#audit-status").text)
    assert not rows(drv, "#audit-rows tr")

    # ---- back on the Users page: reset the password, disable and enable, delete
    row_css = f'#user-rows tr[data-username="{USER}"]'
    go(drv, base, "/users", row_css)
    user_id = int(drv.find_element(By.CSS_SELECTOR, row_css).get_attribute("data-user-id"))
    clickable(drv, f'{row_css} [data-action="password"]').click()
    detail_css = f'#user-rows tr[data-detail-for="{USER}"]'
    fill(drv, f"{detail_css} input.reset-password", "carol-third-pass")
    clickable(drv, f'{detail_css} button[type="submit"]').click()
    visible(drv, f"{detail_css} .ok-note")
    Client(daemon).login(USER, "carol-third-pass")

    clickable(drv, f'{row_css} [data-action="toggle-disabled"]').click()
    accept_confirm(drv, "Disable carol")
    visible(drv, f'{row_css}[data-disabled="true"]')
    refused = Client(daemon).post("/api/v1/auth/login", {"username": USER, "password": "carol-third-pass"})
    assert refused.status_code != 200, "a disabled user signs in"
    clickable(drv, f'{row_css} [data-action="toggle-disabled"]').click()
    visible(drv, f'{row_css}[data-disabled="false"]')
    Client(daemon).login(USER, "carol-third-pass")

    clickable(drv, f'{row_css} [data-action="delete"]').click()
    accept_confirm(drv, 'Delete user "carol"')
    wait(drv).until(lambda d: not rows(d, row_css), "the deleted user is still listed")
    assert admin_api.get(f"/api/v1/users/{user_id}").status_code == 404
    go(drv, base, "/users", f'#user-rows tr[data-username="{ADMIN[0]}"]')
    assert not rows(drv, row_css)
