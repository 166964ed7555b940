"""Ed25519 signature verification (RFC 8032 §5.1.7). The `cryptography` package is used when
importable; instances may run a bare Debian python3 without it, so a pure-Python verifier (the
RFC's arithmetic in extended coordinates, not constant time: it only checks public data) is the
fallback. OPENCLAW_STANDIN_PURE_ED25519=1 forces the fallback so tests cover both."""
import hashlib
import os

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, point):
    result = (0, 1, 1, 0)
    while s:
        if s & 1:
            result = _add(result, point)
        point = _add(point, point)
        s >>= 1
    return result


def _encode(point):
    x, y, z, _ = point
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


_GY = 4 * pow(5, P - 2, P) % P
BASE = _decode(_GY.to_bytes(32, "little"))


def verify_pure(public_key, message, signature):
    if len(signature) != 64:
        return False
    a, r = _decode(public_key), _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % L
    return _encode(_mul(s, BASE)) == _encode(_add(r, _mul(h, a)))


def backend():
    if os.environ.get("OPENCLAW_STANDIN_PURE_ED25519") == "1":
        return "pure-python"
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: F401
        return "cryptography"
    except ImportError:
        return "pure-python"


def preload():
    """Loads the verifier before the first connect needs it (importing `cryptography` costs
    ~50 ms): OpenClaw's Ed25519 is Node's built-in crypto, ready when the gateway listens."""
    if backend() == "cryptography":
        from cryptography.exceptions import InvalidSignature  # noqa: F401


def verify(public_key, message, signature):
    if backend() == "pure-python":
        return verify_pure(public_key, message, signature)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ed25519
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False
