"""LLM providers and their keys: admins put keys in; the API never gives one back (only its
last four characters); at rest a key is sealed with AES-256-GCM by a key file outside the
database, so neither the database file nor the daemon's log holds it in clear."""
import stat

from claworc_harness import Client

KEY = "sk-test-" + "Qx7" * 10 + "WXYZ"


def put(client, name, body):
    return client.http.put(client.url(f"/api/v1/providers/{name}"), json=body, timeout=30)


def test_keys_go_in_and_never_come_out(admin):
    body = {"api": "openai-completions", "base_url": "http://127.0.0.1:9/v1", "api_key": KEY, "models": ["fake-1", "fake-2"]}
    r = put(admin, "fake", body)
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == {"name": "fake", "api": "openai-completions", "base_url": "http://127.0.0.1:9/v1",
                                    "models": ["fake-1", "fake-2"], "has_key": True, "api_key_last4": "WXYZ"}
    # Changing the models without a key keeps the key.
    r = put(admin, "fake", {k: v for k, v in body.items() if k != "api_key"} | {"models": ["fake-3"]})
    assert r.json()["provider"]["has_key"] is True and r.json()["provider"]["models"] == ["fake-3"]
    listed = admin.get("/api/v1/providers").json()
    assert [p["name"] for p in listed["providers"]] == ["fake"]
    assert {"openai", "anthropic", "google", "deepseek", "openrouter", "ollama"} <= {p["name"] for p in listed["presets"]}

    data = admin.daemon.data_dir
    key_file = data / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key_file.stat().st_size == 32
    for f in data.glob("claworc.db*"):
        assert KEY.encode() not in f.read_bytes(), f"{f.name} holds the key in clear"
    assert KEY not in admin.daemon.log_text()
    audit = admin.get("/api/v1/audit?action=provider.save").json()["entries"]
    assert len(audit) == 2 and all(KEY not in str(e) for e in audit)

    # Named by a model setting (the defaults', or an instance's own): refused, nothing lost.
    iid = admin.create("uses-fake")["id"]
    for where, url, setting in [("the default model", "/api/v1/settings/instance-defaults", {"model": "fake/fake-3"}),
                             ('instance "uses-fake"', f"/api/v1/instances/{iid}/settings", {"fallbacks": ["x/y", "fake/fake-3"]})]:
        assert admin.http.put(admin.url(url), json=setting, timeout=30).status_code == 200
        r = admin.delete("/api/v1/providers/fake")
        assert r.status_code == 409 and r.json()["error"]["code"] == "provider_in_use", r.text
        assert where in r.json()["error"]["message"], r.text
        assert admin.http.put(admin.url(url), json={}, timeout=30).status_code == 200
    assert [p["name"] for p in admin.get("/api/v1/providers").json()["providers"]] == ["fake"]
    assert admin.delete("/api/v1/instances/" + str(iid)).status_code == 204
    assert admin.delete("/api/v1/providers/fake").status_code == 204
    assert admin.delete("/api/v1/providers/fake").status_code == 404
    # force=true deletes a provider still named (its agents lose that model, knowingly).
    assert put(admin, "gone", body).status_code == 200
    assert admin.http.put(admin.url("/api/v1/settings/instance-defaults"), json={"model": "gone/fake-1"}, timeout=30).status_code == 200
    assert admin.delete("/api/v1/providers/gone").status_code == 409
    assert admin.delete("/api/v1/providers/gone?force=true").status_code == 204
    assert admin.delete("/api/v1/providers/missing?force=false").status_code == 404
    assert admin.http.put(admin.url("/api/v1/settings/instance-defaults"), json={}, timeout=30).status_code == 200


def test_bad_provider_input_is_refused_and_changes_nothing(admin):
    good = {"api": "anthropic-messages", "base_url": "https://api.anthropic.com", "models": ["claude-x"]}
    cases = [
        ("UPPER", good, "invalid_name"),
        ("ok", good | {"api": "soap"}, "invalid_body"),
        ("ok", good | {"base_url": "ftp://x"}, "invalid_base_url"),
        ("ok", good | {"base_url": "https://a b"}, "invalid_base_url"),
        ("ok", good | {"api_key": "has space"}, "invalid_api_key"),
        ("ok", good | {"models": []}, "invalid_models"),
        ("ok", good | {"models": ["bad model"]}, "invalid_models"),
    ]
    for name, body, code in cases:
        r = put(admin, name, body)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (name, body, r.text)
    assert admin.get("/api/v1/providers").json()["providers"] == []


def test_only_admins_see_providers(admin):
    assert admin.post("/api/v1/users", {"username": "u", "password": "a-good-password", "role": "user"}).status_code == 201
    user = Client(admin.daemon)
    user.login("u", "a-good-password")
    assert user.get("/api/v1/providers").status_code == 403
    assert put(user, "x", {"api": "openai-completions", "base_url": "http://h", "models": ["m"]}).status_code == 403


def test_default_model_and_per_instance_override(admin):
    r = admin.http.put(admin.url("/api/v1/settings/instance-defaults"),
                       json={"model": "openai/gpt-5", "fallbacks": ["anthropic/claude-sonnet-4-5"]}, timeout=30)
    assert r.status_code == 200, r.text
    inst = admin.create("modelled")
    url = admin.url(f"/api/v1/instances/{inst['id']}/settings")
    got = admin.get(f"/api/v1/instances/{inst['id']}/settings").json()
    assert got["overrides"].get("model") is None and got["effective"]["model"] == "openai/gpt-5"
    r = admin.http.put(url, json={"model": "ollama/llama3.1"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["overrides"]["model"] == "ollama/llama3.1" and r.json()["effective"]["model"] == "ollama/llama3.1"
    assert r.json()["effective"]["fallbacks"] == ["anthropic/claude-sonnet-4-5"], "inherited"
    for bad in [{"model": "gpt-5"}, {"model": "Open AI/x"}, {"fallbacks": ["a/b"] * 9}]:
        r = admin.http.put(url, json=bad, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_setting", (bad, r.text)
    assert admin.get(f"/api/v1/instances/{inst['id']}/settings").json()["overrides"]["model"] == "ollama/llama3.1"


def test_an_instance_can_have_its_own_key(admin):
    put(admin, "fake", {"api": "openai-completions", "base_url": "http://127.0.0.1:9/v1", "api_key": KEY, "models": ["m"]})
    inst = admin.create("own-key")
    url = admin.url(f"/api/v1/instances/{inst['id']}/settings")
    own = "sk-instance-only-" + "k" * 12 + "LAST"
    r = admin.http.put(url, json={"model": "fake/m", "provider_keys": {"fake": own}}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["provider_keys"] == [{"provider": "fake", "api_key_last4": "LAST"}]
    assert "provider_keys" not in r.json()["overrides"]
    assert admin.get(f"/api/v1/instances/{inst['id']}/settings").json()["provider_keys"][0]["api_key_last4"] == "LAST"
    for f in admin.daemon.data_dir.glob("claworc.db*"):
        assert own.encode() not in f.read_bytes()
    # An unknown provider or a bad key refuses the whole change: the model stays as it was.
    for bad, code in [({"model": "fake/other", "provider_keys": {"nope": "sk-x"}}, "unknown_provider"),
                      ({"model": "fake/other", "provider_keys": {"fake": "bad key"}}, "invalid_api_key")]:
        r = admin.http.put(url, json=bad, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    settings = admin.get(f"/api/v1/instances/{inst['id']}/settings").json()
    assert settings["overrides"]["model"] == "fake/m" and settings["provider_keys"][0]["api_key_last4"] == "LAST"
    # null goes back to the provider's key; the defaults take no keys at all.
    r = admin.http.put(url, json={"provider_keys": {"fake": None}}, timeout=30)
    assert r.status_code == 200 and r.json()["provider_keys"] == []
    r = admin.http.put(admin.url("/api/v1/settings/instance-defaults"), json={"provider_keys": {"fake": own}}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_setting"
