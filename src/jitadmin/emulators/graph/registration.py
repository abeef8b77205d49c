"""The MSP's app registration as Entra keeps it (one, multi-tenant), and the token endpoint's
check of a certificate client assertion.

What Entra checks in a ``client_assertion``
(https://learn.microsoft.com/entra/identity-platform/certificate-credentials): a JWT whose
header names a certificate uploaded to the app by ``x5t#S256`` (SHA-256 thumbprint, PS256) or
``x5t`` (SHA-1, RS256), signed by that certificate's key; ``aud`` the tenant's token endpoint;
``iss`` and ``sub`` the client id; ``exp``/``nbf`` around now; a ``jti``. The AADSTS codes are
those Entra answers (700027 signature/key not found, 700024 time range); for a malformed or
mis-addressed assertion Entra's exact code varies, the emulator answers 50027.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jitadmin.emulators.graph.http import EntraError

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LOGIN_HOST = "https://login.microsoftonline.com"
_CLOCK_SKEW_S = 300  # Entra tolerates five minutes either way


@dataclass
class AppRegistration:
    """The app in the MSP's own tenant: its credentials and redirect URIs, and the application
    permissions an admin consents to (``requiredResourceAccess``)."""

    client_id: str
    display_name: str = "jitadmin (MSP)"
    certificates: list[x509.Certificate] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)
    required_permissions: tuple[str, ...] = ()

    def add_certificate(self, pem: str) -> str:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        self.certificates.append(cert)
        return cert.fingerprint(hashes.SHA256()).hex().upper()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _malformed(why: str) -> EntraError:
    return EntraError(401, "invalid_client", 50027, f"JWT token is invalid or malformed: {why}.")


def _part(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(text))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _malformed(f"the {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise _malformed(f"the {what} is not a JSON object")
    return value


def _find_certificate(app: AppRegistration, header: dict[str, Any]) -> x509.Certificate:
    s256, s1 = header.get("x5t#S256"), header.get("x5t")
    for cert in app.certificates:
        der = cert.public_bytes(serialization.Encoding.DER)
        if isinstance(s256, str) and _b64decode(s256) == hashlib.sha256(der).digest():
            return cert
        # x5t is the certificate's SHA-1 thumbprint by definition (RFC 7515 §4.1.7): a name
        # for the key, not a security check; the signature is verified with the key itself.
        thumbprint = hashlib.sha1(der, usedforsecurity=False).digest()
        if isinstance(s1, str) and _b64decode(s1) == thumbprint:
            return cert
    shown = s256 if isinstance(s256, str) else s1
    raise EntraError(
        401, "invalid_client", 700027,
        "Client assertion failed signature validation. [Reason - The key was not found., "
        f"Thumbprint of key used by client: '{shown}']",
    )  # fmt: skip


def _check_signature(cert: x509.Certificate, alg: str, signed: bytes, signature: bytes) -> None:
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise _malformed("the certificate has no RSA key")
    pad: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        if alg == "PS256"
        else padding.PKCS1v15()
    )
    try:
        public.verify(signature, signed, pad, hashes.SHA256())
    except InvalidSignature:
        raise EntraError(
            401, "invalid_client", 700027,
            "Client assertion contains an invalid signature. [Reason - The provided signature "
            "value did not match the expected signature value.]",
        ) from None  # fmt: skip


def check_assertion(
    app: AppRegistration, assertion: str, tenant_keys: set[str], now: float | None = None
) -> None:
    """Raise ``EntraError`` as Entra would unless ``assertion`` authenticates ``app``.
    ``tenant_keys``: the names the token endpoint was reached under (GUID, domain)."""
    now = time.time() if now is None else now
    pieces = assertion.split(".")
    if len(pieces) != 3:
        raise _malformed("not three dot-separated parts")
    header, claims = _part(pieces[0], "header"), _part(pieces[1], "payload")
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        raise _malformed(f"unsupported alg {alg!r} (RS256 or PS256)")
    cert = _find_certificate(app, header)
    try:
        signature = _b64decode(pieces[2])
    except (ValueError, binascii.Error):
        raise _malformed("the signature is not base64url") from None
    _check_signature(cert, str(alg), f"{pieces[0]}.{pieces[1]}".encode("ascii"), signature)
    audiences = {f"{LOGIN_HOST}/{key}/oauth2/v2.0/token" for key in tenant_keys}
    if claims.get("aud") not in audiences:
        raise _malformed(f"aud must be the token endpoint ({sorted(audiences)[0]})")
    if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
        raise _malformed("iss and sub must both be the client id")
    exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
    if (
        not isinstance(exp, int | float)
        or now > exp + _CLOCK_SKEW_S
        or (isinstance(nbf, int | float) and nbf > now + _CLOCK_SKEW_S)
    ):
        raise EntraError(
            401, "invalid_client", 700024,
            "Client assertion is not within its valid time range.",
        )  # fmt: skip
    # A jti is required but not single-use: MSAL itself re-sends one assertion until it nears
    # its exp (msal/oauth2cli/assertion.py, create_regenerative_assertion), and Entra takes it.
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _malformed("jti is required")
