"""Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), as authenticator apps make
them: HMAC-SHA1, 6 digits, 30-second steps, the secret in base32 without padding.

Pure: no clock of its own (the caller passes the time) and no storage. ``matching_step`` says
which step a code belongs to, so the caller can refuse a step it has accepted before (a code
is good once, even within its 30 seconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

DIGITS = 6
STEP_SECONDS = 30
# One step either side: the phone's clock and the server's may differ by a few seconds, and a
# code typed in its last second arrives in the next step.
DRIFT_STEPS = 1
SECRET_BYTES = 20  # 160 bits, the HMAC-SHA1 block's natural key size (RFC 4226 section 4)


def new_secret() -> str:
    """A random secret in the base32 form authenticator apps take (no padding)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    cleaned = secret.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226: HMAC-SHA1 of the 8-byte counter, dynamically truncated to ``digits``."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def step_at(unix_seconds: float) -> int:
    return int(unix_seconds // STEP_SECONDS)


def code_at(secret: str, unix_seconds: float) -> str:
    return hotp(_key(secret), step_at(unix_seconds))


def matching_step(secret: str, code: str, unix_seconds: float) -> int | None:
    """The time step ``code`` was made for, within the allowed drift; None when it matches none.

    Compared in constant time; anything but exactly ``DIGITS`` digits matches nothing."""
    given = code.strip().replace(" ", "")
    if len(given) != DIGITS or not given.isdigit():
        return None
    key, now = _key(secret), step_at(unix_seconds)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if hmac.compare_digest(hotp(key, step), given):
            found = step
    return found


def otpauth_uri(secret: str, account: str, issuer: str = "jitadmin") -> str:
    """The ``otpauth://totp/...`` URI authenticator apps read (from a QR code or pasted)."""
    label = quote(f"{issuer}:{account}", safe="@")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1",
                       "digits": DIGITS, "period": STEP_SECONDS})  # fmt: skip
    return f"otpauth://totp/{label}?{query}"


def new_recovery_code() -> str:
    """A one-use recovery code: 10 base32 characters (50 bits) in two groups, easy to type."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode()[:10].lower()
    return f"{raw[:5]}-{raw[5:]}"


def normal_recovery_code(code: str) -> str:
    """How a typed recovery code is compared: lowercase, without spaces or dashes."""
    return code.strip().lower().replace("-", "").replace(" ", "")
