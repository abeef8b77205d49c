"""OpenID Connect relying party: discovery, the authorization URL (code flow with PKCE, state
and nonce), the code exchange and the ID token's validation.

Signature and claims are checked by joserfc and Authlib (``CodeIDToken``: ``iss``, ``aud``,
``exp``, ``iat``, ``nonce``, ``azp``, ``at_hash``), as Authlib's own OpenID client does; no JWT
code of our own. Keys come from the issuer's JWKS, fetched again when a token names a key
(``kid``) the cached set lacks: the issuer's key rollover. What the issuer says is never put
in an error message shown to a visitor (``OidcError.reason`` is for the audit log).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

SCOPES = "openid profile email"
# Asymmetric algorithms only: "none" and HMAC (keyed with the client secret) are never taken.
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# A token naming an unknown key fetches the JWKS again, but not more often than this.
JWKS_REFETCH_SECONDS = 10.0
LEEWAY_SECONDS = 60  # clock skew allowed on exp/iat


class OidcError(Exception):
    """The sign-in could not be completed. ``reason`` goes to the audit log (never shown);
    ``unavailable``: the provider could not be reached or answered garbage (502)."""

    def __init__(self, reason: str, *, unavailable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unavailable = unavailable


@dataclass(frozen=True)
class OidcClientConfig:
    issuer: str
    client_id: str
    client_secret: str


class OidcClient:
    def __init__(self, config: OidcClientConfig, *, timeout_s: float = 10.0) -> None:
        self.config = config
        self._http = httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._refetched_at = -JWKS_REFETCH_SECONDS

    def close(self) -> None:
        self._http.close()

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise OidcError(f"{what}: {type(error).__name__}", unavailable=True) from None
        if not isinstance(body, dict):
            raise OidcError(f"{what}: not a JSON object", unavailable=True)
        return body

    def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (fetched once; again after a failure)."""
        with self._lock:
            if self._metadata is None:
                issuer = self.config.issuer.rstrip("/")
                found = self._get_json(f"{issuer}/.well-known/openid-configuration", "discovery")
                # OIDC Discovery 4.3: the document must name the issuer it was fetched for.
                if found.get("issuer") != self.config.issuer:
                    raise OidcError("discovery: issuer mismatch", unavailable=True)
                for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(found.get(name), str):
                        raise OidcError(f"discovery: no {name}", unavailable=True)
                self._metadata = found
            return self._metadata

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        url: str = prepare_grant_uri(
            self.metadata()["authorization_endpoint"],
            client_id=self.config.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=SCOPES,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return url

    def redeem(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str, now: datetime
    ) -> dict[str, Any]:
        """The validated claims of the ID token the code is exchanged for."""
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": code_verifier}  # fmt: skip
        try:
            # client_secret_basic; httpx form-encodes the credentials as RFC 6749 2.3.1 asks.
            response = self._http.post(
                self.metadata()["token_endpoint"],
                data=form,
                auth=(self.config.client_id, self.config.client_secret),
                headers={"Accept": "application/json"},
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise OidcError(f"token: {type(error).__name__}", unavailable=True) from None
        if not isinstance(body, dict):
            raise OidcError("token: not a JSON object", unavailable=True)
        if response.status_code != 200 or "error" in body:
            # e.g. invalid_grant: a code used twice, expired, or issued for another client.
            raise OidcError(f"token: {str(body.get('error', response.status_code))[:64]}")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("token: no id_token")
        access = body.get("access_token")
        return self.validate(id_token, nonce=nonce, now=now,
                             access_token=access if isinstance(access, str) else None)  # fmt: skip

    def validate(
        self, id_token: str, *, nonce: str, now: datetime, access_token: str | None = None
    ) -> dict[str, Any]:
        """The claims of ``id_token`` once its signature (the issuer's JWKS), ``iss``, ``aud``,
        ``exp``, ``iat`` and ``nonce`` are right; an ``OidcError`` naming the check otherwise."""
        metadata = self.metadata()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        registry = JWSRegistry(algorithms=[a for a in offered if a in ALGORITHMS] or ["RS256"])
        try:
            try:
                token = jwt.decode(id_token, self._key_set(), registry=registry)
            except InvalidKeyIdError:
                token = jwt.decode(id_token, self._key_set(refetch=True), registry=registry)
            params = {"nonce": nonce, "client_id": self.config.client_id}
            if access_token:
                params["access_token"] = access_token
            options = {
                "iss": {"essential": True, "value": self.config.issuer},
                "aud": {"essential": True, "value": self.config.client_id},
            }
            claims = CodeIDToken(token.claims, token.header, options, params)
            claims.validate(now=int(now.timestamp()), leeway=LEEWAY_SECONDS)
        except JoseError as error:
            raise OidcError(f"id_token: {error.error}: {error.description or ''}"[:200]) from None
        except ValueError as error:  # not a JWT at all
            raise OidcError(f"id_token: {type(error).__name__}") from None
        return dict(claims)

    def _key_set(self, *, refetch: bool = False) -> KeySet:
        with self._lock:
            cached = self._keys
            if cached is not None and not refetch:
                return cached
            if cached is not None and time.monotonic() - self._refetched_at < JWKS_REFETCH_SECONDS:
                return cached  # an unknown kid again so soon: not one more fetch for it
            if refetch:
                self._refetched_at = time.monotonic()
        found = self._get_json(str(self.metadata()["jwks_uri"]), "jwks")
        try:
            keys = KeySet.import_key_set(found)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise OidcError("jwks: not a key set", unavailable=True) from None
        with self._lock:
            self._keys = keys
        return keys
