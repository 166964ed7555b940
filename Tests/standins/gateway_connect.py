"""The connect handshake of the gateway stand-in, in OpenClaw's order: frame shape, closed
schema, protocol range, startup sidecars, shared auth, device identity (signature over the v3
string, v2 accepted), pairing, then hello-ok. Without a device the requested scopes are cleared
to [] (the strict default of 2026 releases)."""
import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time

import ed25519

OPERATOR_SCOPES = ["operator.read", "operator.write", "operator.admin", "operator.approvals", "operator.pairing",
                   "operator.talk", "operator.talk.secrets"]
SIGNATURE_SKEW_MS = 120_000
FORWARD_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip")


class Refused(Exception):
    """A failed connect: the error shape of the `res`, then a close with `close_code`."""

    def __init__(self, code, message, close_code=1008, details=None, **extra):
        super().__init__(message)
        self.error = {"code": code, "message": message, **({"details": details} if details else {}), **extra}
        self.close_code = close_code


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _norm(value):
    return (value or "").strip().encode("ascii", "ignore").decode().lower()


def signed_payloads(params, device, token):
    """The v3 string clients sign, and the older v2 form the gateway still accepts."""
    client = params["client"]
    common = [device["id"], client["id"], client["mode"], params.get("role", "operator"),
              ",".join(params.get("scopes", [])), str(device["signedAt"]), token or "", device["nonce"]]
    v3 = "|".join(["v3", *common, _norm(client.get("platform")), _norm(client.get("deviceFamily"))])
    v2 = "|".join(["v2", *common])
    return v3.encode(), v2.encode()


def _is_local(remote, headers):
    try:
        loopback = ipaddress.ip_address(remote[0]).is_loopback
    except ValueError:
        loopback = False
    return loopback and not any(h in headers for h in FORWARD_HEADERS)


def check_device(gateway, params, nonce, remote, headers):
    device = params["device"]
    try:
        public = b64url_decode(device["publicKey"])
        signature = b64url_decode(device["signature"])
    except ValueError:
        raise Refused("INVALID_REQUEST", "device key or signature is not base64url", details={"code": "DEVICE_AUTH_SIGNATURE_INVALID"})
    if len(public) != 32:
        raise Refused("INVALID_REQUEST", "device public key invalid", details={"code": "DEVICE_AUTH_PUBLIC_KEY_INVALID"})
    if device["id"] != hashlib.sha256(public).hexdigest():
        raise Refused("INVALID_REQUEST", "device identity mismatch", details={"code": "DEVICE_AUTH_DEVICE_ID_MISMATCH"})
    if device["nonce"] != nonce:
        raise Refused("INVALID_REQUEST", "device nonce mismatch", details={"code": "DEVICE_AUTH_NONCE_MISMATCH"})
    if abs(int(time.time() * 1000) - device["signedAt"]) > SIGNATURE_SKEW_MS:
        raise Refused("INVALID_REQUEST", "device signature expired", details={"code": "DEVICE_AUTH_SIGNATURE_EXPIRED"})
    token = (params.get("auth") or {}).get("token")
    if not any(ed25519.verify(public, payload, signature) for payload in signed_payloads(params, device, token)):
        raise Refused("INVALID_REQUEST", "device signature invalid", details={"code": "DEVICE_AUTH_SIGNATURE_INVALID"})
    if device["id"] not in gateway.paired:
        if gateway.settings["pairing"] == "required" or not _is_local(remote, headers):
            request_id = secrets.token_hex(8)
            raise Refused("NOT_PAIRED", "pairing required", details={
                "code": "PAIRING_REQUIRED", "requestId": request_id, "reason": "not-paired",
                "recommendedNextStep": f"openclaw devices approve {request_id}"})
        gateway.paired.add(device["id"])  # silent local pairing


def check_auth(gateway, params):
    auth = params.get("auth") or {}
    mode = gateway.auth_mode
    if mode == "none":
        return
    secret = gateway.password if mode == "password" else gateway.token
    given = auth.get("password") if mode == "password" else auth.get("token")
    device_token = auth.get("deviceToken")
    if device_token and device_token in gateway.device_tokens:
        return
    if not given:
        code = "AUTH_PASSWORD_MISSING" if mode == "password" else "AUTH_TOKEN_MISSING"
        raise Refused("INVALID_REQUEST", f"unauthorized: gateway {mode} missing", details={"code": code})
    if not hmac.compare_digest(given.encode(), (secret or "").encode()):
        code = "AUTH_PASSWORD_MISMATCH" if mode == "password" else "AUTH_TOKEN_MISMATCH"
        raise Refused("INVALID_REQUEST", f"unauthorized: gateway {mode} mismatch", details={"code": code})


def connect(gateway, conn, frame, nonce, remote, headers):
    """Validates the first frame; returns the hello-ok payload (and sets conn's grant) or raises Refused."""
    if not isinstance(frame, dict) or frame.get("type") != "req" or frame.get("method") != "connect":
        raise Refused("INVALID_REQUEST", "invalid handshake: first request must be connect")
    problem = gateway.problem(frame, "RequestFrame")
    if problem:
        raise Refused("INVALID_REQUEST", f"invalid request frame: {problem}")
    params = frame.get("params")
    problem = gateway.problem(params, "ConnectParams")
    if problem:
        raise Refused("INVALID_REQUEST", f"invalid connect params: {problem}")
    protocol = gateway.settings["protocol"]
    if not params["minProtocol"] <= protocol <= params["maxProtocol"]:
        raise Refused("INVALID_REQUEST", "protocol mismatch", close_code=1002,
                      details={"code": "PROTOCOL_MISMATCH", "expectedProtocol": protocol,
                               "minProtocol": params["minProtocol"], "maxProtocol": params["maxProtocol"]})
    wait_ms = gateway.sidecars_remaining_ms()
    if wait_ms > 0:
        raise Refused("UNAVAILABLE", "gateway starting: startup sidecars are still loading", close_code=1013,
                      details={"reason": "startup-sidecars"}, retryable=True, retryAfterMs=wait_ms)
    role = params.get("role", "operator")
    if role != "operator":
        raise Refused("INVALID_REQUEST", f"role {role} is not supported by the stand-in")
    check_auth(gateway, params)
    auth = {"role": role, "scopes": []}
    if params.get("device"):
        check_device(gateway, params, nonce, remote, headers)
        auth["scopes"] = [s for s in params.get("scopes", []) if s in OPERATOR_SCOPES]
        auth["deviceToken"] = gateway.issue_device_token(params["device"]["id"])
        auth["issuedAtMs"] = int(time.time() * 1000)
    conn.scopes = auth["scopes"]
    conn.caps = list(params.get("caps", []))
    conn.client = params["client"]
    return {
        "type": "hello-ok", "protocol": protocol,
        "server": {"version": gateway.version, "connId": conn.id},
        "features": {"methods": sorted(gateway.METHODS), "events": ["agent", "chat", "tick", "presence", "health", "shutdown"]},
        "snapshot": {"presence": [], "health": {"ok": True}, "stateVersion": {"presence": 0, "health": 0},
                     "uptimeMs": gateway.uptime_ms(), "configPath": gateway.config_path, "stateDir": gateway.state_dir,
                     "sessionDefaults": {"defaultAgentId": "main", "mainKey": "main", "mainSessionKey": "agent:main:main"},
                     "authMode": gateway.auth_mode},
        "auth": auth,
        "policy": {"maxPayload": 26_214_400, "maxBufferedBytes": 52_428_800, "tickIntervalMs": gateway.settings["tickMs"]},
    }


def parse(text):
    try:
        return json.loads(text)
    except ValueError:
        return None
