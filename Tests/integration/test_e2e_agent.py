"""The Agent page in headless Chromium: an admin installs an OpenClaw bundle, adds a provider
from a preset with a key (shown afterwards only as its last four characters), sets the
default model, and deletes that provider only after being told the default model names it."""
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from claworc_harness import ADMIN
from test_agent_bundles import bundle
from test_e2e_accounts import sign_in
from test_e2e_dashboard import driver  # noqa: F401  (a fixture)


def test_admin_sets_up_the_agent(admin, driver, tmp_path):  # noqa: F811
    sign_in(driver, admin.daemon.base_url, *ADMIN)
    driver.get(admin.daemon.base_url + "/agent")
    wait = WebDriverWait(driver, 30)

    archive = tmp_path / "openclaw.tar.gz"
    archive.write_bytes(bundle("2026.11.30"))
    wait.until(EC.presence_of_element_located((By.ID, "bundle-file"))).send_keys(str(archive))
    driver.find_element(By.ID, "bundle-upload").click()
    row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, '#bundles-list li[data-version="2026.11.30"]')))
    assert "active" in row.text
    # A second version, made active: the page says when instances pick it up.
    second = tmp_path / "openclaw-2.tar.gz"
    second.write_bytes(bundle("2026.12.1"))
    driver.find_element(By.ID, "bundle-file").send_keys(str(second))
    driver.find_element(By.ID, "bundle-upload").click()
    newer = '#bundles-list li[data-version="2026.12.1"] button'
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, newer))).click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "bundles-note"), "next start"))
    wait.until(lambda d: "active" in d.find_element(By.CSS_SELECTOR, '#bundles-list li[data-version="2026.12.1"]').text)

    wait.until(lambda d: len(Select(d.find_element(By.ID, "provider-preset")).options) > 1)
    Select(driver.find_element(By.ID, "provider-preset")).select_by_value("openai")
    assert driver.find_element(By.ID, "provider-base-url").get_attribute("value") == "https://api.openai.com/v1"
    driver.find_element(By.ID, "provider-key").send_keys("sk-e2e-secret-key-ABCD")
    driver.find_element(By.ID, "provider-save").click()
    shown = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, '#providers-list li[data-name="openai"] .provider-key')))
    assert shown.text == "key …ABCD"
    assert driver.find_element(By.ID, "provider-key").get_attribute("value") == "", "the key is not kept in the page"
    assert "sk-e2e-secret" not in driver.page_source

    driver.find_element(By.ID, "model-primary").send_keys("openai/gpt-5")
    driver.find_element(By.ID, "model-fallbacks").send_keys("openai/gpt-5-mini")
    driver.find_element(By.CSS_SELECTOR, "#model-form button[type=submit]").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "model-saved"), "Saved."))
    settings = admin.get("/api/v1/settings/instance-defaults").json()["settings"]
    assert settings["model"] == "openai/gpt-5" and settings["fallbacks"] == ["openai/gpt-5-mini"]

    # Deleting the provider the default model names: the page says why it is refused and
    # deletes only when asked again.
    delete = '#providers-list li[data-name="openai"] .btn-danger'

    def dialog():
        alert = wait.until(EC.alert_is_present())
        return alert, alert.text

    driver.find_element(By.CSS_SELECTOR, delete).click()
    alert, text = dialog()
    assert "Delete the provider openai?" in text, text
    alert.accept()
    alert, text = dialog()
    assert "the default model" in text and "anyway" in text, text
    alert.dismiss()
    assert [p["name"] for p in admin.get("/api/v1/providers").json()["providers"]] == ["openai"]
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, delete))).click()
    dialog()[0].accept()
    dialog()[0].accept()
    wait.until(EC.invisibility_of_element_located((By.CSS_SELECTOR, '#providers-list li[data-name="openai"]')))
    assert admin.get("/api/v1/providers").json()["providers"] == []
