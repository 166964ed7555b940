"""A software WebAuthn authenticator for tests: ES256 (and Ed25519, RS256) keys from the
`cryptography` package, CBOR written by hand, and every field of a ceremony's answer exposed
so a test can break exactly one of them (origin, RP ID hash, flags, counter, challenge).

It produces what a browser would send: `PublicKeyCredential.toJSON()` shapes with base64url
strings. Nothing is mocked on the server side: the answers go to a real daemon.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value) -> bytes:
    """Canonical-enough CBOR for ints, bytes, text, lists and dicts (keys kept in order)."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
        raise ValueError("too large")
    if isinstance(value, bool):
        return bytes([0xF5 if value else 0xF4])
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


class SoftKey:
    """One credential: its id, private key and counter."""

    def __init__(self, alg: int = -7, counter: int = 0):
        self.alg = alg
        self.credential_id = os.urandom(32)
        self.counter = counter
        if alg == -7:
            self.private = ec.generate_private_key(ec.SECP256R1())
        elif alg == -8:
            self.private = ed25519.Ed25519PrivateKey.generate()
        elif alg == -257:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(alg)

    def cose_key(self) -> bytes:
        if self.alg == -7:
            numbers = self.private.public_key().public_numbers()
            return cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        if self.alg == -8:
            from cryptography.hazmat.primitives import serialization
            raw = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return cbor({1: 1, 3: -8, -1: 6, -2: raw})
        numbers = self.private.public_key().public_numbers()
        return cbor({1: 3, 3: -257, -1: numbers.n.to_bytes(256, "big"), -2: numbers.e.to_bytes(3, "big")})

    def sign(self, message: bytes) -> bytes:
        if self.alg == -7:
            return self.private.sign(message, ec.ECDSA(hashes.SHA256()))
        if self.alg == -8:
            return self.private.sign(message)
        return self.private.sign(message, padding.PKCS1v15(), hashes.SHA256())


def client_data(kind: str, challenge: str, origin: str, **extra) -> bytes:
    return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False, **extra},
                      separators=(",", ":")).encode()


def auth_data(rp_id: str, flags: int, counter: int, attested: bytes = b"", rp_id_hash: bytes | None = None) -> bytes:
    return (rp_id_hash or hashlib.sha256(rp_id.encode()).digest()) + bytes([flags]) + struct.pack(">I", counter) + attested


def registration(key: SoftKey, challenge: str, origin: str, rp_id: str, *, flags=UP | UV | AT, kind="webauthn.create",
                 rp_id_hash=None) -> dict:
    attested = bytes(16) + struct.pack(">H", len(key.credential_id)) + key.credential_id + key.cose_key()
    data = auth_data(rp_id, flags, key.counter, attested, rp_id_hash)
    attestation = cbor({"fmt": "none", "attStmt": {}, "authData": data})
    return {
        "id": b64url(key.credential_id), "rawId": b64url(key.credential_id), "type": "public-key",
        "response": {"clientDataJSON": b64url(client_data(kind, challenge, origin)),
                     "attestationObject": b64url(attestation)},
    }


def assertion(key: SoftKey, challenge: str, origin: str, rp_id: str, user_handle: bytes | None, *, flags=UP | UV,
              counter: int | None = None, kind="webauthn.get", rp_id_hash=None) -> dict:
    """Signs a sign-in answer; the counter goes up by one unless one is given."""
    if counter is None:
        key.counter += 1
        counter = key.counter
    data = auth_data(rp_id, flags, counter, b"", rp_id_hash)
    cdj = client_data(kind, challenge, origin)
    signature = key.sign(data + hashlib.sha256(cdj).digest())
    return {
        "id": b64url(key.credential_id), "rawId": b64url(key.credential_id), "type": "public-key",
        "response": {"clientDataJSON": b64url(cdj), "authenticatorData": b64url(data), "signature": b64url(signature),
                     "userHandle": b64url(user_handle) if user_handle is not None else None},
    }
