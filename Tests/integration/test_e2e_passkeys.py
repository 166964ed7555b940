"""Passkeys end to end in headless Chromium with WebDriver's virtual authenticator (CTAP2,
internal transport, resident keys, user verification): set up, add a passkey on the Account
page, rename it, sign out, sign in with the passkey alone (no username typed), see it used,
delete it, and see the next passkey sign-in refused.

The daemon listens on 127.0.0.1 but the browser opens http://localhost:PORT: passkeys need a
secure context and an RP ID that is a name. Every wait is an explicit WebDriverWait. On
failure a screenshot, the page and the console log land in Tests/integration/artifacts.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit


from claworc_harness import Client
from test_e2e_dashboard import driver, wait  # noqa: F401  (driver is a fixture)

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import Protocol, Transport, VirtualAuthenticatorOptions
from selenium.webdriver.support import expected_conditions as EC

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
USER, PASSWORD = "admin", "passkey-Correct-Horse-7"


def visible(drv, css):
    return wait(drv).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)), f"{css} never became visible")


def clickable(drv, css):
    return wait(drv).until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)), f"{css} never became clickable")


def wait_path(drv, pattern):
    wait(drv).until(lambda d: re.fullmatch(pattern, urlsplit(d.current_url).path), f"expected a page matching {pattern!r}")


def errors(drv):
    return " | ".join(e.text for e in drv.find_elements(By.CSS_SELECTOR, ".error") if e.is_displayed())


def passkey_rows(drv):
    return drv.find_elements(By.CSS_SELECTOR, "#passkey-rows tr")


def test_passkey_register_sign_out_and_sign_in_with_it_alone(daemon, driver):
    try:
        scenario(daemon, driver)
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            driver.save_screenshot(str(ARTIFACTS / "e2e-passkeys-failure.png"))
            (ARTIFACTS / "e2e-passkeys-failure.html").write_text(driver.page_source)
            (ARTIFACTS / "e2e-passkeys-console.txt").write_text(
                "\n".join(f"{e.get('level')} {e.get('message')}" for e in driver.get_log("browser")))
        except WebDriverException:
            pass
        raise


def scenario(daemon, drv):
    base = f"http://localhost:{daemon.port}"
    r = Client(daemon).post("/api/v1/setup", {"code": daemon.setup_code(), "username": USER, "password": PASSWORD})
    assert r.status_code == 200, r.text

    options = VirtualAuthenticatorOptions()
    options.protocol = Protocol.CTAP2
    options.transport = Transport.INTERNAL
    options.has_resident_key = True
    options.has_user_verification = True
    options.is_user_verified = True
    drv.add_virtual_authenticator(options)

    # Sign in with the password, go to the Account page by the header link.
    drv.get(base + "/login")
    visible(drv, "#login-username").send_keys(USER)
    visible(drv, "#login-password").send_keys(PASSWORD)
    clickable(drv, "#login-submit").click()
    wait_path(drv, "/")
    clickable(drv, "#nav-account").click()
    wait_path(drv, "/account")
    visible(drv, "#passkeys-empty")

    # Add a passkey: the virtual authenticator answers navigator.credentials.create.
    visible(drv, "#passkey-name").send_keys("Virtual laptop")
    clickable(drv, "#passkey-add").click()
    wait(drv).until(lambda d: len(passkey_rows(d)) == 1, f"the passkey never appeared: {errors(drv)}")
    row = passkey_rows(drv)[0]
    assert row.find_element(By.CSS_SELECTOR, ".passkey-name").text == "Virtual laptop"
    assert row.find_element(By.CSS_SELECTOR, '[data-field="last-used"]').text == "never"
    credentials = drv.get_credentials()
    assert len(credentials) == 1 and credentials[0].is_resident_credential, credentials

    # Rename it.
    clickable(drv, '#passkey-rows [data-action="rename"]').click()
    field = visible(drv, '#passkey-rows [data-field="rename"]')
    field.clear()
    field.send_keys("Work laptop\n")
    wait(drv).until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#passkey-rows .passkey-name")] == ["Work laptop"],
                    f"the rename never showed: {errors(drv)}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(ARTIFACTS / "e2e-passkeys-account.png"))

    # Sign out; sign in with the passkey only: no username or password typed.
    clickable(drv, "#logout").click()
    wait_path(drv, "/login")
    assert visible(drv, "#login-username").get_attribute("value") == ""
    clickable(drv, "#login-passkey").click()
    wait_path(drv, "/")
    wait(drv).until(lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="username"]').text == USER,
                    f"not signed in as {USER}: {errors(drv)}")
    session = drv.get_cookie("claworc_session")
    assert session and session["httpOnly"], session
    assert drv.get_credentials()[0].sign_count >= 1

    # The Account page shows it used; delete it, and the same passkey no longer signs in.
    drv.get(base + "/account")
    wait(drv).until(lambda d: len(passkey_rows(d)) == 1 and
                    d.find_element(By.CSS_SELECTOR, '#passkey-rows [data-field="last-used"]').text not in ("", "never"),
                    "the passkey's last use never showed")
    clickable(drv, '#passkey-rows [data-action="delete"]').click()
    wait(drv).until(EC.alert_is_present(), "Delete did not ask for confirmation").accept()
    visible(drv, "#passkeys-empty")
    clickable(drv, "#logout").click()
    wait_path(drv, "/login")
    clickable(drv, "#login-passkey").click()
    error = visible(drv, "#login-error")
    wait(drv).until(lambda d: "not registered" in d.find_element(By.CSS_SELECTOR, "#login-error").text,
                    f"expected the unknown passkey to be refused, got: {error.text}")
    assert urlsplit(drv.current_url).path == "/login"
