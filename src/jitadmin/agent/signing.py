"""The agent's key pair and its signed requests (the server's side: ``services.agents``)."""

from __future__ import annotations

import base64
import secrets
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jitadmin.core.agent_protocol import (
    HEADER_AGENT,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    signed_text,
)


def new_private_key() -> str:
    """A fresh Ed25519 private key (base64 raw bytes), made here and never sent anywhere."""
    raw = Ed25519PrivateKey.generate().private_bytes_raw()
    return base64.b64encode(raw).decode()


def _key(private_key: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key))


def public_key(private_key: str) -> str:
    raw = _key(private_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def signature_headers(
    private_key: str, agent_id: str | None, method: str, path: str, body: bytes,
    *, timestamp: int | None = None, nonce: str | None = None,
) -> dict[str, str]:  # fmt: skip
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    once = nonce or secrets.token_urlsafe(18)
    signature = _key(private_key).sign(signed_text(method, path, stamp, once, body))
    headers = {
        HEADER_TIMESTAMP: stamp,
        HEADER_NONCE: once,
        HEADER_SIGNATURE: base64.b64encode(signature).decode(),
    }
    if agent_id:
        headers[HEADER_AGENT] = agent_id
    return headers
