"""Command line, config file and stand-in settings of the gateway stand-in.

The config is read strictly, as OpenClaw does: unknown keys or wrong types in the sections the
stand-in models (gateway, models, agents.defaults) and unknown root keys are a config-class
failure (exit 78). `${VAR}` in strings is substituted from the environment (upper-case names),
and a missing variable stays visible. JSON5 is not parsed: the appliance writes strict JSON."""
import json
import os
import re

from schema import Invalid, Validator

EXIT_CONFIG = 78
OPAQUE = {"type": "object"}
ROOT_KEYS = ["$schema", "meta", "wizard", "env", "tools", "browser", "logging", "session", "skills", "plugins",
             "hooks", "channels", "auth", "commands", "messages", "cron", "ui", "diagnostics", "update", "secrets",
             "memory", "talk", "approvals", "discovery", "broadcast", "audio", "web", "bindings", "mcp"]
STRING = {"type": "string"}
SECRET = {"anyOf": [STRING, {"type": "object", "required": ["source", "id"], "additionalProperties": False,
                             "properties": {"source": {"enum": ["env", "file", "exec", "store"]}, "provider": STRING, "id": STRING}}]}
PROVIDER = {"type": "object", "additionalProperties": False, "required": ["baseUrl"], "properties": {
    "baseUrl": {"type": "string", "minLength": 1}, "apiKey": SECRET, "auth": STRING,
    "api": {"enum": ["openai-completions", "openai-responses", "anthropic-messages", "google-generative-ai", "ollama"]},
    "headers": {"type": "object", "additionalProperties": STRING}, "authHeader": {"type": "boolean"},
    "timeoutSeconds": {"type": "integer", "minimum": 1},
    "models": {"type": "array", "items": {"type": "object", "required": ["id"], "additionalProperties": False, "properties": {
        "id": {"type": "string", "minLength": 1}, "name": STRING, "input": {"type": "array", "items": {"enum": ["text", "image"]}},
        "contextWindow": {"type": "integer", "minimum": 1}, "maxTokens": {"type": "integer", "minimum": 1},
        "reasoning": {"type": "boolean"}, "cost": OPAQUE}}}}}
MODEL_REF = {"type": "string", "pattern": "^[^/]+/.+$"}
CONFIG_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {
    **{k: OPAQUE for k in ROOT_KEYS}, "$schema": STRING,
    "gateway": {"type": "object", "additionalProperties": False, "properties": {
        "mode": {"enum": ["local", "remote"]}, "port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "bind": {"enum": ["loopback", "lan", "tailnet", "auto", "custom"]}, "customBindHost": STRING,
        "auth": {"type": "object", "additionalProperties": False, "properties": {
            "mode": {"enum": ["token", "password", "none", "trusted-proxy"]}, "token": SECRET, "password": SECRET}},
        "http": OPAQUE, "controlUi": OPAQUE, "reload": OPAQUE, "tailscale": OPAQUE, "nodes": OPAQUE, "remote": OPAQUE}},
    "agents": {"type": "object", "additionalProperties": False, "properties": {
        "defaults": {"type": "object", "additionalProperties": False, "properties": {
            "workspace": STRING,
            "model": {"anyOf": [MODEL_REF, {"type": "object", "additionalProperties": False, "properties": {
                "primary": MODEL_REF, "fallbacks": {"type": "array", "items": MODEL_REF}}}]},
            "models": {"type": "object", "additionalProperties": OPAQUE}, "modelPolicy": OPAQUE,
            "thinkingDefault": STRING, "timeoutSeconds": {"type": "integer", "minimum": 1}, "sandbox": OPAQUE}},
        "entries": OPAQUE, "list": {"type": "array"}}},
    "models": {"type": "object", "additionalProperties": False, "properties": {
        "mode": {"enum": ["merge", "replace"]}, "providers": {"type": "object", "additionalProperties": PROVIDER}}},
}}

# Stand-in behaviour, from the bundle's standin.json and then OPENCLAW_STANDIN_* variables.
SETTINGS = {"protocol": 4, "tickMs": 15000, "ticks": True, "sidecarsMs": 0, "noise": False, "pairing": "local"}
ENV_NAMES = {"protocol": "PROTOCOL", "tickMs": "TICK_MS", "ticks": "TICKS", "sidecarsMs": "SIDECARS_MS", "noise": "NOISE", "pairing": "PAIRING"}


class ConfigError(Exception):
    pass


class UsageError(Exception):
    pass


def parse_args(argv):
    """`gateway run [options]` (or bare `gateway`) → options dict."""
    args = list(argv)
    if args[:1] != ["gateway"]:
        raise UsageError(f"the stand-in only implements `openclaw gateway run` (got: {' '.join(argv) or 'nothing'})")
    args = args[1:]
    if args[:1] == ["run"]:
        args = args[1:]
    opts = {"allowUnconfigured": False}
    with_value = {"--port": "port", "--bind": "bind", "--token": "token", "--auth": "auth", "--password": "password",
                  "--ws-log": None}
    flags = {"--allow-unconfigured": "allowUnconfigured", "--verbose": None, "--force": None, "--dev": None,
             "--compact": None}
    while args:
        arg = args.pop(0)
        name, _, inline = arg.partition("=")
        if name in with_value:
            if not inline:
                if not args:
                    raise UsageError(f"{name} needs a value")
                inline = args.pop(0)
            if with_value[name]:
                opts[with_value[name]] = inline
        elif arg in flags:
            if flags[arg]:
                opts[flags[arg]] = True
        else:
            raise UsageError(f"unknown option {arg}")
    if "port" in opts:
        if not opts["port"].isdigit() or int(opts["port"]) > 65535:
            raise UsageError("--port must be a port number")
        opts["port"] = int(opts["port"])
    return opts


def _substitute(value, missing):
    if isinstance(value, str):
        def repl(m):
            if m.group(1) in os.environ:
                return os.environ[m.group(1)]
            missing.add(m.group(1))
            return m.group(0)
        return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)\}", repl, value)
    if isinstance(value, list):
        return [_substitute(v, missing) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, missing) for k, v in value.items()}
    return value


def config_path():
    if os.environ.get("OPENCLAW_CONFIG_PATH"):
        return os.environ["OPENCLAW_CONFIG_PATH"]
    state = os.environ.get("OPENCLAW_STATE_DIR") or os.path.join(
        os.environ.get("OPENCLAW_HOME") or os.path.expanduser("~"), ".openclaw")
    return os.path.join(state, "openclaw.json")


def load_config(path, allow_unconfigured=False):
    """The validated config with variables substituted; raises ConfigError (exit 78)."""
    if not os.path.exists(path):
        if allow_unconfigured:
            return {}
        raise ConfigError(f"Missing config at {path}. Run `openclaw setup` or pass --allow-unconfigured.")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"Invalid config at {path}: {e}")
    try:
        Validator(CONFIG_SCHEMA).check(raw, CONFIG_SCHEMA, "config")
    except Invalid as e:
        raise ConfigError(f"Invalid config at {path}: {e}")
    missing = set()
    config = _substitute(raw, missing)
    for name in sorted(missing):
        print(f"[config] warning: ${{{name}}} is not set; left unresolved", flush=True)
    if config.get("gateway", {}).get("mode") != "local" and not allow_unconfigured:
        raise ConfigError("Gateway start blocked: set gateway.mode=local (current: "
                          f"{config.get('gateway', {}).get('mode', 'unset')}) or pass --allow-unconfigured.")
    return config


def secret(value):
    """A configured secret: a string, or a SecretRef of source env (others are not modelled)."""
    if isinstance(value, dict):
        return os.environ.get(value["id"]) if value.get("source") == "env" else None
    return value


def load_settings(defaults_path=None):
    settings = dict(SETTINGS)
    if defaults_path and os.path.exists(defaults_path):
        with open(defaults_path, encoding="utf-8") as f:
            settings.update(json.load(f))
    for key, suffix in ENV_NAMES.items():
        value = os.environ.get("OPENCLAW_STANDIN_" + suffix)
        if value is None:
            continue
        if isinstance(SETTINGS[key], bool):
            settings[key] = value in ("1", "true", "yes")
        elif isinstance(SETTINGS[key], int):
            settings[key] = int(value)
        else:
            settings[key] = value
    if settings["protocol"] not in (3, 4):
        raise ConfigError("OPENCLAW_STANDIN_PROTOCOL must be 3 or 4")
    return settings
