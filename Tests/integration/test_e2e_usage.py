"""Token usage in headless Chromium: after an instance's agent made requests through the key
proxy, an admin sees them on the Usage page (a chart per instance, a series per model) and on
the instance page's card, sets the instance's monthly budget there, and the proxy refuses the
next request; a user sees the card of an instance assigned to them but no Usage link."""
import pathlib
import shutil
import tempfile

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from claworc_harness import ADMIN, Daemon, bootstrap_admin
from test_e2e_accounts import sign_in, sign_out
from test_e2e_dashboard import driver  # noqa: F401  (a fixture)
from test_llm_proxy import KEY, bearer, credential, inside

STANDINS = pathlib.Path(__file__).resolve().parents[1] / "standins"
from fake_llm import FakeLLM  # noqa: E402


@pytest.fixture
def setup():
    llm = FakeLLM(api_key=KEY).start()
    base = pathlib.Path(tempfile.mkdtemp(prefix="claworc-test-"))
    base.chmod(0o711)
    daemon = Daemon(base / "data", ["--instance-services", "none"]).start()
    admin = bootstrap_admin(daemon)
    r = admin.http.put(admin.url("/api/v1/providers/fake"), json={"api": "openai-completions", "base_url": llm.url + "/v1",
                                                                   "api_key": KEY, "models": ["fake-model"]}, timeout=30)
    assert r.status_code == 200, r.text
    iid = admin.create("charted")["id"]
    assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
    yield daemon, admin, iid
    daemon.stop()
    llm.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_usage_page_card_and_budget(setup, driver):  # noqa: F811
    daemon, admin, iid = setup
    cred = credential(daemon, iid)
    for model in ("model-one", "model-two"):
        got = inside(admin, iid, "/providers/fake/chat/completions",
                     {"model": model, "messages": [{"role": "user", "content": "chart me"}]}, bearer(cred))
        assert got["status"] == 200, got
    spent = admin.get(f"/api/v1/instances/{iid}/usage").json()["budget"]["spent_this_month"]
    assert spent > 0

    wait = WebDriverWait(driver, 30)
    sign_in(driver, daemon.base_url, *ADMIN)
    driver.find_element(By.ID, "nav-usage").click()
    section = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f'.usage-instance[data-instance="{iid}"]')))
    assert "charted" in section.text
    assert len(section.find_elements(By.CSS_SELECTOR, "svg.usage-chart rect")) == 2, "one bar segment per model today"
    assert {"model-one", "model-two"} <= set(section.find_element(By.CLASS_NAME, "usage-legend").text.split())

    driver.get(f"{daemon.base_url}/instances/{iid}")
    wait.until(EC.text_to_be_present_in_element((By.ID, "usage-spent"), f"{spent:,}"))
    assert driver.find_element(By.ID, "usage-budget").text == "unlimited"
    driver.find_element(By.CSS_SELECTOR, "#usage-card > summary").click()   # folded by default
    driver.find_element(By.ID, "usage-budget-input").send_keys(str(spent))
    driver.find_element(By.ID, "usage-budget-save").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "usage-budget"), "spent"))
    assert admin.get(f"/api/v1/instances/{iid}/settings").json()["overrides"]["monthly_token_budget"] == spent
    refused = inside(admin, iid, "/providers/fake/chat/completions",
                     {"model": "model-one", "messages": [{"role": "user", "content": "one more"}]}, bearer(cred))
    assert refused["status"] == 429, refused

    assert admin.post("/api/v1/users", {"username": "viewer", "password": "a-good-password", "role": "user"}).status_code == 201
    uid = next(u["id"] for u in admin.get("/api/v1/users").json()["users"] if u["username"] == "viewer")
    assert admin.http.put(admin.url(f"/api/v1/instances/{iid}/users/{uid}"), timeout=30).status_code == 204
    sign_out(driver)
    sign_in(driver, daemon.base_url, "viewer", "a-good-password")
    assert not driver.find_elements(By.ID, "nav-usage")
    driver.get(f"{daemon.base_url}/instances/{iid}")
    wait.until(EC.text_to_be_present_in_element((By.ID, "usage-spent"), f"{spent:,}"))
    assert not driver.find_element(By.ID, "usage-budget-form").is_displayed(), "only admins set budgets"
