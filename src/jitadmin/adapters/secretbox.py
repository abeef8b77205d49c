"""AES-256-GCM for secrets at rest, with key ids so keys can be rotated.

Sealed form: ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. The ``context`` (e.g.
``grant:<id>:password``) is bound as associated data, so a ciphertext copied to another row
does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_KEY_LENGTH = 32
_NONCE_BYTES = 12


class SecretBoxError(ValueError):
    """A sealed value could not be opened (wrong key, tampered, or another row's)."""


def _derive(secret_key: str) -> bytes:
    if len(secret_key) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(f"the secret key must be at least {MIN_SECRET_KEY_LENGTH} characters")
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"jitadmin/secretbox", info=b"aes-256-gcm"
    ).derive(secret_key.encode())


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"jitadmin-key-id" + key).hexdigest()[:8]


class AesGcmSecretBox:
    def __init__(self, secret_key: str, previous_keys: tuple[str, ...] = ()) -> None:
        primary = _derive(secret_key)
        self._primary_id = _key_id(primary)
        self._keys = {self._primary_id: AESGCM(primary)}
        for old in previous_keys:
            derived = _derive(old)
            self._keys.setdefault(_key_id(derived), AESGCM(derived))

    def __repr__(self) -> str:
        return f"AesGcmSecretBox(key_id={self._primary_id!r})"

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self._primary_id].encrypt(nonce, plaintext.encode(), context.encode())
        blob = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"v1.{self._primary_id}.{blob}"

    def open(self, sealed: str, context: str) -> str:
        try:
            version, key_id, blob = sealed.split(".", 2)
        except ValueError as error:
            raise SecretBoxError("malformed sealed value") from error
        if version != "v1" or key_id not in self._keys:
            raise SecretBoxError(f"sealed with an unknown key ({key_id})")
        raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
        try:
            plain = self._keys[key_id].decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()
            )
        except InvalidTag as error:
            raise SecretBoxError("sealed value failed authentication") from error
        return plain.decode()

    def needs_rotation(self, sealed: str) -> bool:
        return not sealed.startswith(f"v1.{self._primary_id}.")
