"""The instance page's Settings tab in headless Chromium: every setting in effect with where it
comes from (the appliance default or the instance's own override); an admin overrides the
model and a provider key for one instance and goes back to the default; a user sees the
settings but cannot change them."""
from selenium.webdriver.common.by import By

from claworc_harness import ADMIN
from test_e2e_accounts import sign_in, sign_out
from test_e2e_dashboard import clickable, driver, save_failure_artifacts, visible, wait  # noqa: F401

PASSWORD = "settings-e2e-Passw0rd!"
KEY = "sk-instance-" + "Zq9" * 8 + "LAST"


def row(drv, key):
    return drv.find_element(By.CSS_SELECTOR, f'#settings-rows tr[data-setting="{key}"]')


def open_settings(drv, base, iid):
    drv.get(f"{base}/instances/{iid}")
    clickable(drv, "#tab-settings").click()
    wait(drv).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#settings-rows tr[data-setting="model"]'), "no settings")


def test_settings_tab_shows_sources_and_overrides(admin, driver):  # noqa: F811
    base = admin.daemon.base_url
    r = admin.http.put(admin.url("/api/v1/providers/fake"), timeout=30, json={
        "api": "openai-completions", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-provider-" + "x" * 12,
        "models": ["one", "two"]})
    assert r.status_code == 200, r.text
    assert admin.http.put(admin.url("/api/v1/settings/instance-defaults"), json={"model": "fake/one"},
                          timeout=30).status_code == 200
    iid = admin.create("settings-e2e")["id"]
    r = admin.post("/api/v1/users", {"username": "dora", "password": PASSWORD, "role": "user"})
    assert r.status_code == 201, r.text
    uid = r.json()["user"]["id"] if "user" in r.json() else r.json()["id"]
    assert admin.http.put(admin.url(f"/api/v1/instances/{iid}/users/{uid}"), timeout=30).status_code in (200, 204)
    try:
        sign_in(driver, base, *ADMIN)
        open_settings(driver, base, iid)
        model = row(driver, "model")
        assert model.get_attribute("data-source") == "default"
        assert model.find_element(By.CSS_SELECTOR, ".setting-effective").text == "fake/one"

        # Override the model and give the instance its own key.
        visible(driver, "#setting-model").send_keys("fake/two")
        visible(driver, "#setting-key-fake").send_keys(KEY)
        clickable(driver, "#settings-save").click()
        wait(driver).until(lambda d: row(d, "model").get_attribute("data-source") == "instance", "the override did not show")
        assert row(driver, "model").find_element(By.CSS_SELECTOR, ".setting-effective").text == "fake/two"
        assert "not running" in visible(driver, "#settings-saved").text or "next start" in driver.find_element(By.ID, "settings-saved").text
        keyrow = driver.find_element(By.CSS_SELECTOR, '#settings-keys tr[data-provider="fake"]')
        assert keyrow.get_attribute("data-source") == "instance" and "…LAST" in keyrow.text
        assert KEY not in driver.page_source, "a key is write-only"
        got = admin.get(f"/api/v1/instances/{iid}/settings").json()
        assert got["overrides"]["model"] == "fake/two" and got["effective"]["model"] == "fake/two"
        assert [k["provider"] for k in got["provider_keys"]] == ["fake"]

        # Back to the defaults: empty the field, drop the instance's key.
        visible(driver, "#setting-model").clear()
        clickable(driver, "#setting-key-reset-fake").click()
        wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, '#settings-keys tr[data-provider="fake"]')
                           .get_attribute("data-source") == "provider", "the instance's key stayed")
        clickable(driver, "#settings-save").click()
        wait(driver).until(lambda d: row(d, "model").get_attribute("data-source") == "default", "the default did not come back")
        got = admin.get(f"/api/v1/instances/{iid}/settings").json()
        assert got["overrides"].get("model") is None and got["effective"]["model"] == "fake/one" and got["provider_keys"] == []

        # A user assigned to the instance reads the settings, changes nothing.
        sign_out(driver)
        sign_in(driver, base, "dora", PASSWORD)
        open_settings(driver, base, iid)
        assert row(driver, "model").find_element(By.CSS_SELECTOR, ".setting-effective").text == "fake/one"
        assert not driver.find_element(By.ID, "setting-model").is_enabled()
        assert not driver.find_element(By.ID, "settings-save").is_displayed()
    except Exception:
        save_failure_artifacts(driver)
        raise
