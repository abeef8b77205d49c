"""Certificate credentials for the app registration: the public certificate (uploaded to the app
in Entra) and its private key (sealed like every other secret).

MSAL signs the client assertion itself (``client_credential={"private_key", "public_certificate"}``:
PS256 with the certificate's SHA-256 thumbprint as ``x5t#S256``, and ``x5c``), as Microsoft's
https://learn.microsoft.com/entra/identity-platform/certificate-credentials describes. Here the
pair is only checked when saved, so a wrong file is a 422 naming the field, not a failed grant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

CERTIFICATE_RULE = "must be a PEM X.509 certificate (-----BEGIN CERTIFICATE-----)"
PRIVATE_KEY_RULE = "must be an unencrypted PEM RSA private key of at least 2048 bits"
PAIR_RULE = "is not the private key of certificate_pem"
_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class CertificateInfo:
    sha1_thumbprint: str  # hex, upper case: what the Entra admin centre shows
    sha256_thumbprint: str
    not_after: datetime
    subject: str


def certificate_info(pem: str) -> CertificateInfo:
    """Raises ValueError (CERTIFICATE_RULE) unless ``pem`` is a PEM certificate."""
    try:
        cert = x509.load_pem_x509_certificate(pem.strip().encode("ascii"))
    except (ValueError, UnicodeError):
        raise ValueError(CERTIFICATE_RULE) from None
    return CertificateInfo(
        sha1_thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's id
        sha256_thumbprint=cert.fingerprint(hashes.SHA256()).hex().upper(),
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
    )


def problems(certificate_pem: str, private_key_pem: str) -> list[tuple[str, str]]:
    """(field, rule) for a certificate and key that cannot sign a client assertion together."""
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.strip().encode("ascii"))
    except (ValueError, UnicodeError):
        return [("certificate_pem", CERTIFICATE_RULE)]
    try:
        key = serialization.load_pem_private_key(private_key_pem.strip().encode("ascii"), None)
    except (ValueError, TypeError, UnicodeError):
        return [("private_key_pem", PRIVATE_KEY_RULE)]
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < _MIN_RSA_BITS:
        return [("private_key_pem", PRIVATE_KEY_RULE)]
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != (
        key.public_key().public_numbers()
    ):
        return [("private_key_pem", PAIR_RULE)]
    if cert.not_valid_after_utc < datetime.now(UTC):
        return [("certificate_pem", "has expired; make a new certificate and upload it")]
    return []


def msal_credential(
    client_secret: str | None, certificate_pem: str | None, private_key_pem: str | None
) -> str | dict[str, Any]:
    """What ``msal.ConfidentialClientApplication(client_credential=…)`` takes: the secret, or the
    key and certificate (MSAL then computes the thumbprints and signs PS256)."""
    if certificate_pem and private_key_pem:
        return {"private_key": private_key_pem, "public_certificate": certificate_pem}
    if client_secret:
        return client_secret
    raise ValueError("no credential: a client secret or a certificate and its private key")


CREDENTIAL_RULE = (
    "give either client_secret or certificate_pem with private_key_pem (the app's credential)"
)


def credential_problems(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Exactly one credential: a secret, or a certificate with its key."""
    secret = settings.get("client_secret")
    cert, key = settings.get("certificate_pem"), settings.get("private_key_pem")
    if secret and (cert or key):
        return [("client_secret", CREDENTIAL_RULE)]
    if cert and not key:
        return [("private_key_pem", "is required with certificate_pem")]
    if key and not cert:
        return [("certificate_pem", "is required with private_key_pem")]
    if cert and key:
        return problems(str(cert), str(key))
    if not secret:
        return [("client_secret", CREDENTIAL_RULE)]
    return []
