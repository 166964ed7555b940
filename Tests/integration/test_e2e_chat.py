"""The Chat tab in headless Chromium, through the real path end to end: an admin uploads the
stand-in as the OpenClaw bundle, sets a provider (a fake LLM on the host's loopback) and the
default model; the instance's `agent` service runs the bundle with the config the daemon wrote,
and the agent reaches the provider only through the daemon's key proxy (127.0.0.1:8399 inside
the instance). A user opens an assigned instance, sends a message, watches the answer stream
in, sees a tool card, stops a run, reloads and finds the history; a second user has a session
of their own; with chat_shared both see one conversation.
"""
import json
import shutil
import sys
import time

import pytest
from selenium.webdriver.common.by import By

from claworc_harness import ADMIN, Client
from chat_helpers import LLM_KEY, Chat
from test_agent_bundles import upload
from test_e2e_accounts import sign_in, sign_out
from test_e2e_dashboard import clickable, driver, save_failure_artifacts, visible, wait  # noqa: F401

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "standins"))
from bundle import make_bundle  # noqa: E402
from fake_llm import FakeLLM  # noqa: E402

ANSWER = "Fake answer to: {}. Have a nice day."
PASSWORD = "chat-e2e-Passw0rd!"

# Records every text the streaming bubble shows, so the test sees the answer grow.
WATCH_JS = """
window.__partials = [];
const log = document.getElementById('chat-log');
new MutationObserver(() => {
  const b = log.querySelector('.chat-assistant.streaming .chat-text');
  if (b && window.__partials[window.__partials.length - 1] !== b.textContent) window.__partials.push(b.textContent);
}).observe(log, {subtree: true, childList: true, characterData: true});
"""


def make_user(admin, name, iid):
    r = admin.post("/api/v1/users", {"username": name, "password": PASSWORD, "role": "user"})
    assert r.status_code == 201, r.text
    uid = r.json()["user"]["id"] if "user" in r.json() else r.json()["id"]
    r = admin.http.put(admin.url(f"/api/v1/instances/{iid}/users/{uid}"), timeout=30)
    assert r.status_code in (200, 204), r.text
    client = Client(admin.daemon)
    client.login(name, PASSWORD)
    return client


def open_chat(drv, base, iid):
    drv.get(f"{base}/instances/{iid}")
    clickable(drv, "#tab-chat").click()
    wait(drv, 60).until(lambda d: d.find_element(By.ID, "chat-status").get_attribute("data-state") == "ready",
                        "the chat never became ready")


def last_answer(drv):
    answers = drv.find_elements(By.CSS_SELECTOR, "#chat-log .chat-assistant .chat-text")
    return answers[-1].text if answers else ""


def send(drv, text):
    box = visible(drv, "#chat-input")
    box.send_keys(text)
    clickable(drv, "#chat-send").click()


def test_chat_in_the_dashboard(admin, driver, tmp_path):  # noqa: F811
    daemon = admin.daemon
    base = daemon.base_url
    llm = FakeLLM(LLM_KEY, 0.05).start()
    try:
        archive = tmp_path / "openclaw.tar.gz"
        make_bundle(str(archive), "2026.12.1", "v4")
        r = upload(admin, archive.read_bytes())
        assert r.status_code == 201, r.text
        r = admin.http.put(admin.url("/api/v1/providers/fake"), timeout=30, json={
            "api": "openai-completions", "base_url": llm.url + "/v1", "api_key": LLM_KEY, "models": ["fake-model"]})
        assert r.status_code == 200, r.text
        r = admin.http.put(admin.url("/api/v1/settings/instance-defaults"), json={"model": "fake/fake-model"}, timeout=30)
        assert r.status_code == 200, r.text

        iid = admin.create("chat-e2e")["id"]
        bob = make_user(admin, "bob", iid)
        carol = make_user(admin, "carol", iid)
        assert admin.post(f"/api/v1/instances/{iid}/start").status_code == 200
        inst = admin.wait_for(iid, lambda i: i["state"] == "running", what="running")
        assert any(s["name"] == "agent" for s in inst["services"]), inst["services"]
        admin.wait_for(iid, lambda i: any(s["name"] == "agent" and s["state"] == "ready" for s in i["services"]),
                       timeout=120, what="the agent service ready")

        # Bob: a streamed answer.
        sign_in(driver, base, "bob", PASSWORD)
        open_chat(driver, base, iid)
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-log .chat-empty"), "no empty history")
        driver.execute_script(WATCH_JS)
        send(driver, "hello from bob")
        wait(driver, 30).until(lambda d: last_answer(d) == ANSWER.format("hello from bob"), "no answer")
        partials = driver.execute_script("return window.__partials")
        assert len([p for p in partials if p]) >= 2 and all(ANSWER.format("hello from bob").startswith(p.strip()) for p in partials), partials

        # A tool card.
        send(driver, "please use a tool")
        card = visible(driver, '#chat-log [data-testid="chat-tool"][data-tool="exec"]', 30)
        assert "exec" in card.text
        wait(driver, 30).until(lambda d: last_answer(d) == ANSWER.format("please use a tool"), "no answer after the tool")

        # Stop a run half-way.
        llm.hold()
        send(driver, "a story to stop")
        wait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".chat-assistant.streaming")
                               and last_answer(d), "the run never started streaming")
        clickable(driver, "#chat-stop").click()
        wait(driver, 30).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".chat-assistant.streaming"), "the run did not stop")
        llm.release()
        assert last_answer(driver) != ANSWER.format("a story to stop")
        assert not driver.find_element(By.ID, "chat-error").is_displayed()

        # Reload: the history is back.
        open_chat(driver, base, iid)
        wait(driver, 30).until(lambda d: ANSWER.format("hello from bob") in d.find_element(By.ID, "chat-log").text, "no history")
        assert "hello from bob" in driver.find_element(By.ID, "chat-log").text
        assert "sk-" not in driver.page_source and LLM_KEY not in driver.page_source

        # Carol has her own, empty session.
        sign_out(driver)
        sign_in(driver, base, "carol", PASSWORD)
        open_chat(driver, base, iid)
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-log .chat-empty"), "carol sees bob's chat")
        assert "hello from bob" not in driver.find_element(By.ID, "chat-log").text

        # Shared: bob's message in the shared session shows up live in carol's page.
        r = admin.http.put(admin.url(f"/api/v1/instances/{iid}/settings"), json={"chat_shared": True}, timeout=30)
        assert r.status_code == 200, r.text
        open_chat(driver, base, iid)
        chat = Chat(bob, iid)
        chat.ready()
        chat.run("shared hello")
        wait(driver, 30).until(lambda d: ANSWER.format("shared hello") in d.find_element(By.ID, "chat-log").text,
                               "carol does not see the shared conversation")
        chat.close()
    except Exception:
        save_failure_artifacts(driver)
        raise
    finally:
        llm.stop()
