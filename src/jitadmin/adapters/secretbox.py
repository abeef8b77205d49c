"""AES-256-GCM for secrets at rest, with key ids so keys can be rotated.

Sealed form: ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. The ``context`` (e.g.
``grant:<id>:password``) is bound as associated data, so a ciphertext copied to another row
does not decrypt.

The same secret key also yields HMAC-SHA256 keys, one HKDF sub-key per purpose (``api-token``,
``web-session``, ``audit-chain``...), so a value keyed for one use never stands for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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


def _mac_key(secret_key: str, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"jitadmin/mac", info=purpose.encode()
    ).derive(secret_key.encode())


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"jitadmin-key-id" + key).hexdigest()[:8]


class AesGcmSecretBox:
    def __init__(self, secret_key: str, previous_keys: tuple[str, ...] = ()) -> None:
        primary = _derive(secret_key)
        self._primary_id = _key_id(primary)
        self._keys = {self._primary_id: AESGCM(primary)}
        self._secrets = [secret_key]
        for old in previous_keys:
            derived = _derive(old)
            if _key_id(derived) not in self._keys:
                self._keys[_key_id(derived)] = AESGCM(derived)
                self._secrets.append(old)
        self._mac_keys: dict[str, tuple[bytes, ...]] = {}

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

    def mac_keys(self, purpose: str) -> tuple[bytes, ...]:
        """The HMAC keys for ``purpose``: the primary key's first, then each previous key's."""
        keys = self._mac_keys.get(purpose)
        if keys is None:
            keys = tuple(_mac_key(secret, purpose) for secret in self._secrets)
            self._mac_keys[purpose] = keys
        return keys

    def digests(self, purpose: str, value: str) -> tuple[str, ...]:
        """HMAC-SHA256 of ``value`` (hex) under each key of ``mac_keys``; the first is current."""
        data = value.encode()
        return tuple(
            hmac.new(key, data, hashlib.sha256).hexdigest() for key in self.mac_keys(purpose)
        )
