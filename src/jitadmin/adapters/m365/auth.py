"""App-only tokens for Microsoft Graph: one MSAL confidential client per customer tenant.

MSAL insists on an https authority (``msal.authority.canonicalize``), so a plain-http
authority (the local emulator) is only accepted on a loopback host; MSAL then gets the
canonical ``https://login.microsoftonline.com/{tenant}`` and an ``http_client`` that rewrites
that prefix to the configured URL (MSAL refuses a non-https authority, and its ``http_client``
seam is how a client reaches a stand-in). An https authority (sovereign
clouds) goes to MSAL unchanged.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal
from msal.exceptions import MsalServiceError

from jitadmin.core.errors import AdapterError, MisconfiguredError, TransientError
from jitadmin.core.naming import TENANT_ID_RULE, is_tenant_id
from jitadmin.core.retry import parse_retry_after

log = logging.getLogger(__name__)

CANONICAL_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_GRAPH_SCOPE = "https://graph.microsoft.com/.default"

# AADSTS codes from the token endpoint turned into advice an MSP admin can act on
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
_AADSTS_ADVICE: dict[int, str] = {
    7000215: "the client secret is wrong (use the secret's value, not its id)",
    7000222: "the client secret has expired; create a new one and update the connection",
    700016: (
        "the application was not found in tenant {tenant}: admin consent has not been "
        "granted in this customer tenant, or the client id is wrong"
    ),
    90002: "tenant {tenant} was not found; check the tenant id or domain",
    900023: "{tenant} is not a valid tenant id or domain",
    700027: (
        "the client assertion's signature does not match a certificate registered on the app "
        "(upload certificate_pem to the app registration)"
    ),
    700024: "the client assertion is outside its valid time range (check this host's clock)",
    53003: "the token request was blocked by a Conditional Access policy",
    70011: "the requested scope is invalid",
    7000112: "the application is disabled in tenant {tenant}",
    7000229: "the application has no service principal in tenant {tenant} (consent missing)",
}
# OAuth error values that mean "the identity platform is having a moment".
_TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_LOOPBACK_NAMES = frozenset({"localhost"})
# Tokens that live longer than this are reused in-process between MSAL lookups.
_REUSE_MIN_LIFETIME_S = 600


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str, what: str) -> str:
    """https anywhere, plain http only on loopback (tokens and secrets never travel in clear)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return url.rstrip("/")
    raise MisconfiguredError(f"{what} must be an https URL (plain http only on loopback): {url}")


def graph_scope(graph_url: str) -> str:
    """``https://graph.microsoft.us/v1.0`` -> ``https://graph.microsoft.us/.default``."""
    parts = urlsplit(graph_url)
    if parts.scheme == "https" and parts.hostname:
        return f"https://{parts.netloc}/.default"
    # The loopback emulator stands in for the public cloud.
    return DEFAULT_GRAPH_SCOPE


class _RefusedHostError(Exception):
    """MSAL tried to reach a host other than the configured authority."""


@dataclass
class _LastFailure:
    status: int
    body: dict[str, Any] | None
    retry_after_s: float | None


class MsalHttpClient:
    """The ``http_client`` MSAL calls (``msal/oauth2cli/http.py`` shape), backed by httpx.

    With ``rewrite_to`` set, URLs under the canonical authority go to that base instead, and
    any other host is refused so the client secret can only ever reach the configured place.
    """

    def __init__(self, http: httpx.Client, rewrite_to: str | None = None) -> None:
        self._http = http
        self._rewrite_to = rewrite_to
        self.last_failure: _LastFailure | None = None

    def _url(self, url: str) -> str:
        if self._rewrite_to is None:
            return url
        if url == CANONICAL_AUTHORITY or url.startswith(CANONICAL_AUTHORITY + "/"):
            return self._rewrite_to + url[len(CANONICAL_AUTHORITY) :]
        raise _RefusedHostError(f"refusing to send an identity request to {urlsplit(url).netloc}")

    def _note(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            self.last_failure = _LastFailure(
                status=response.status_code,
                body=_json_object(response.text),
                retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            )
        return response

    def post(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        **_: Any,
    ) -> httpx.Response:
        if isinstance(data, dict):
            # MSAL hands the client assertion over as bytes (requests encodes those as-is);
            # httpx would send their repr, so decode them first.
            data = {k: v.decode("ascii") if isinstance(v, bytes) else v for k, v in data.items()}
        body: dict[str, Any] = (
            {"content": data} if isinstance(data, str | bytes) else {"data": data}
        )
        return self._note(self._http.post(self._url(url), params=params, headers=headers, **body))

    def get(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **_: Any,
    ) -> httpx.Response:
        return self._note(self._http.get(self._url(url), params=params, headers=headers))

    def close(self) -> None:
        """The owner of the httpx client closes it, not MSAL."""


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class MsalTokenProvider:
    """Client-credentials tokens for one tenant; MSAL caches and renews them."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        credential: str | Mapping[str, str],
        *,
        authority_url: str = CANONICAL_AUTHORITY,
        scope: str = DEFAULT_GRAPH_SCOPE,
        http: httpx.Client,
    ) -> None:
        """``credential``: the client secret, or MSAL's certificate form
        (``{"private_key", "public_certificate"}``, see ``certificate.msal_credential``)."""
        authority = check_endpoint(authority_url, "authority_url")
        if not is_tenant_id(tenant_id):
            raise MisconfiguredError(f"tenant_id {TENANT_ID_RULE}")
        self._tenant = tenant_id
        self._client_id = client_id
        self._credential: str | dict[str, str] = (
            credential if isinstance(credential, str) else dict(credential)
        )
        self._scope = scope
        if authority.startswith("http://"):
            self._authority = f"{CANONICAL_AUTHORITY}/{tenant_id}"
            self._transport = MsalHttpClient(http, rewrite_to=authority)
        else:
            self._authority = f"{authority}/{tenant_id}"
            self._transport = MsalHttpClient(http)
        self._cache = msal.TokenCache()
        self._app: Any = None
        self._lock = threading.Lock()
        # The current token and when to stop handing it out without asking MSAL: every Graph
        # call needs one, and MSAL's cache lookup (under our lock) is not free.
        self._current: tuple[str, float] | None = None

    def __repr__(self) -> str:
        return f"MsalTokenProvider(tenant={self._tenant!r}, client_id={self._client_id!r})"

    def token(self) -> str:
        try:
            return self._token()
        except AdapterError:
            # MSAL replays a throttled or refused answer from its own cache for a while (a 400
            # for 60 s): the worker already waits as long as the server asked, and a consent
            # granted a moment ago must count at once, so start afresh next time.
            with self._lock:
                self._app = None
                self._current = None
            raise

    def _token(self) -> str:
        current = self._current
        if current is not None and time.monotonic() < current[1]:
            return current[0]
        with self._lock:
            self._transport.last_failure = None
            try:
                app = self._application()
                result = app.acquire_token_for_client(scopes=[self._scope])
            except AdapterError:
                raise
            except _RefusedHostError as exc:
                raise MisconfiguredError(str(exc)) from None
            except httpx.TimeoutException:
                raise TransientError("the identity platform did not answer in time") from None
            except httpx.TransportError as exc:
                raise TransientError(
                    f"the identity platform is unreachable ({type(exc).__name__})"
                ) from None
            except (ValueError, RuntimeError, MsalServiceError):
                # 5xx or a non-JSON answer; MSAL's own text may quote the response body.
                raise self._failure_from_status("token request failed") from None
        if isinstance(result, dict) and isinstance(result.get("access_token"), str):
            token = str(result["access_token"])
            lifetime = result.get("expires_in")
            if isinstance(lifetime, int | float) and lifetime > _REUSE_MIN_LIFETIME_S:
                # Half its remaining life, like MSAL's own refresh_in: never near expiry.
                self._current = (token, time.monotonic() + lifetime / 2)
            return token
        raise self._failure_from_result(result if isinstance(result, dict) else {})

    def tenant_id(self) -> str:
        """The directory id the authority resolved the configured tenant to (OIDC discovery:
        the token endpoint names the tenant GUID), so a domain name and the GUID
        of the same tenant give one answer."""
        self.token()  # builds the application (discovery) with the usual error mapping
        with self._lock:
            app = self._application()
            tenant = str(getattr(app.authority, "tenant", "") or "").lower()
        if not tenant:
            raise MisconfiguredError(f"the authority did not name the tenant of {self._tenant}")
        return tenant

    def invalidate(self) -> None:
        """Forget cached access tokens so the next ``token()`` asks the authority afresh."""
        with self._lock:
            self._current = None
            for entry in list(self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                self._cache.remove_at(entry)

    # -- internals ---------------------------------------------------------------------

    def _application(self) -> Any:
        if self._app is not None:
            return self._app
        try:
            # Construction performs OIDC discovery against the tenant.
            self._app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._credential,
                authority=self._authority,
                http_client=self._transport,
                token_cache=self._cache,
                # Aliases only matter for refresh tokens, which client credentials never get;
                # without this MSAL calls /common/discovery/instance after every failed token.
                instance_discovery=False,
            )
        except ValueError:
            failure = self._transport.last_failure
            if failure is not None and 400 <= failure.status < 500:
                mapped = self._failure_from_result(failure.body or {}, default_code=90002)
                raise mapped from None
            raise MisconfiguredError(
                f"the authority for tenant {self._tenant} is not usable (OIDC discovery failed)"
            ) from None
        return self._app

    def _failure_from_status(self, what: str) -> AdapterError:
        failure = self._transport.last_failure
        if failure is None or failure.status == 429 or failure.status >= 500:
            status = f"HTTP {failure.status}" if failure else "no usable answer"
            return TransientError(
                f"{what} for tenant {self._tenant}: {status}",
                retry_after_s=failure.retry_after_s if failure else None,
            )
        return self._failure_from_result(failure.body or {})

    def _failure_from_result(
        self, result: dict[str, Any], *, default_code: int | None = None
    ) -> AdapterError:
        failure = self._transport.last_failure
        status = failure.status if failure else None
        error = result.get("error")
        if status is not None and (status == 429 or status >= 500):
            return TransientError(
                f"token request for tenant {self._tenant} failed: HTTP {status}",
                vendor_code=error if isinstance(error, str) else None,
                retry_after_s=failure.retry_after_s if failure else None,
            )
        if isinstance(error, str) and error in _TRANSIENT_OAUTH_ERRORS:
            return TransientError(
                f"token request for tenant {self._tenant} failed: {error}", vendor_code=error
            )
        codes = [c for c in result.get("error_codes") or [] if isinstance(c, int)]
        if not codes and default_code is not None:
            codes = [default_code]
        for code in codes:
            advice = _AADSTS_ADVICE.get(code)
            if advice is not None:
                return MisconfiguredError(
                    f"cannot get a Graph token for app {self._client_id}: "
                    + advice.format(tenant=self._tenant),
                    vendor_code=f"AADSTS{code}",
                )
        label = error if isinstance(error, str) else "no access token in the answer"
        return MisconfiguredError(
            f"cannot get a Graph token for app {self._client_id} in tenant {self._tenant}: {label}",
            vendor_code=f"AADSTS{codes[0]}" if codes else None,
        )
