"""Self-signed certificates and hand-made client assertions for the certificate-credential tests."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TestCertificate:
    __test__ = False  # a data holder, not a test class

    certificate_pem: str
    private_key_pem: str
    key: rsa.RSAPrivateKey
    der: bytes


def make_certificate(
    common_name: str = "jitadmin test", *, bits: int = 2048, days: int = 30
) -> TestCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return TestCertificate(
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        key,
        cert.public_bytes(serialization.Encoding.DER),
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def assertion(
    cert: TestCertificate,
    *,
    client_id: str,
    audience: str,
    alg: str = "PS256",
    sign_with: rsa.RSAPrivateKey | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A client assertion as Microsoft's certificate-credentials page describes it."""
    now = int(time.time())
    head: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if alg == "PS256":
        head["x5t#S256"] = _b64(hashlib.sha256(cert.der).digest())
    else:
        head["x5t"] = _b64(hashlib.sha1(cert.der).digest())  # noqa: S324 - Entra's x5t
    head.update(header or {})
    body = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
            "nbf": now, "iat": now, "exp": now + 600, **claims}  # fmt: skip
    signing_input = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(body).encode())}"
    pad: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        if alg == "PS256"
        else padding.PKCS1v15()
    )
    signature = (sign_with or cert.key).sign(signing_input.encode(), pad, hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"
