"""A thin synchronous Microsoft Graph v1.0 client: base URL, tokens, retries, typed errors.

Retry policy, all inside one budget of seconds and attempts per call (Graph's advice:
https://learn.microsoft.com/graph/throttling):

* 429: wait ``Retry-After`` (else exponential backoff with jitter), any method;
* 5xx, timeouts, connection errors: retried only for idempotent calls;
* 401: drop the cached token, fetch a new one, retry once;
* replication lag: statuses the caller names (404 right after a create, 403 right after a
  role removal) are retried too.

When the budget runs out a ``TransientError`` is raised (with the server's ``Retry-After``, if
any) so the durable worker reschedules. Errors are classified on ``error.code`` and
``details[].code``, never on message text, except the password-complexity case, which Graph
reports as a plain ``Request_BadRequest`` (https://learn.microsoft.com/graph/errors).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from jitadmin.adapters.egress import egress_client
from jitadmin.adapters.m365.auth import (
    CANONICAL_AUTHORITY,
    MsalTokenProvider,
    check_endpoint,
    graph_scope,
)
from jitadmin.adapters.m365.errors import (
    GraphForbiddenError,
    GraphNotFoundError,
    is_retryable_conflict,
    parse_error,
    sensitive_values,
    typed_error,
)
from jitadmin.adapters.m365.permissions import Need, consent_advice, token_roles
from jitadmin.adapters.pinned_http import PinnedHttp
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import AdapterError, MisconfiguredError, TransientError
from jitadmin.core.retry import MAX_REVOKE_RETRY_AFTER_S, RetryPolicy

log = logging.getLogger(__name__)

GRAPH_URL = "https://graph.microsoft.com/v1.0"
# (status, error.code) pairs that mean "the directory has not caught up yet".
NOT_YET_REPLICATED: tuple[tuple[int, str], ...] = ((404, "Request_ResourceNotFound"),)
DENIED_UNTIL_REPLICATED: tuple[tuple[int, str], ...] = ((403, "Authorization_RequestDenied"),)
# 401 while a fresh admin consent replicates: Graph does not know the app in the tenant yet.
IDENTITY_NOT_FOUND = "Authorization_IdentityNotFound"
# How long after a connection is made that 401 is taken for replication, not a missing consent.
CONSENT_GRACE_S = 900.0
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
_MAX_PAGES = 1000


class HttpSender(Protocol):
    """``httpx.Client`` or ``adapters.pinned_http.PinnedHttp``: what the Graph client sends with."""

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = ...,
        json: Any = ...,
        headers: Mapping[str, str] | None = ...,
    ) -> httpx.Response: ...

    def close(self) -> None: ...


class TokenProvider(Protocol):
    def token(self) -> str: ...

    def invalidate(self) -> None: ...


class GraphClient:
    """Synchronous Graph calls for one tenant. Paths are relative to ``base_url``."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        http: HttpSender | None = None,
        egress: EgressPolicy | None = None,
        timeout_s: float = 30.0,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 16.0,
        budget_s: float = 60.0,
        max_attempts: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        tenant_label: str | None = None,
        consent_grace_s: float = CONSENT_GRACE_S,
    ) -> None:
        self._base = check_endpoint(base_url, "graph_url")
        self._tenant_label = tenant_label or "this tenant"
        self._consent_grace_s = consent_grace_s
        self._origin = urlsplit(self._base)[:2]
        self._tokens = tokens
        self._owns_http = http is None
        self._token_http: httpx.Client | None = None  # MSAL's, when connect() made it
        self._http: HttpSender = http or PinnedHttp(egress or EgressPolicy(), timeout=timeout_s)
        self._policy = RetryPolicy(base_s=backoff_base_s, cap_s=backoff_cap_s)
        self._budget_s = budget_s
        self._max_attempts = max(max_attempts, 1)
        self._sleep = sleep
        self._monotonic = monotonic
        self._created = monotonic()
        # Until when the tenant asked us (429 + Retry-After) to send nothing at all: every
        # thread using this client waits, not only the call that was throttled.
        self._hold_until = float("-inf")
        self._hold_lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        tenant_id: str,
        client_id: str,
        credential: str | Mapping[str, str],
        *,
        authority_url: str = CANONICAL_AUTHORITY,
        graph_url: str = GRAPH_URL,
        timeout_s: float = 30.0,
        egress: EgressPolicy | None = None,
        **knobs: Any,
    ) -> GraphClient:
        """A client whose tokens come from MSAL (one confidential client for this tenant).

        MSAL's token and discovery requests go through the same egress-checked client.
        """
        check_endpoint(graph_url, "graph_url")
        http = egress_client(
            egress or EgressPolicy(), timeout=timeout_s, headers={"User-Agent": "jitadmin"}
        )
        try:
            tokens = MsalTokenProvider(
                tenant_id,
                client_id,
                credential,
                authority_url=authority_url,
                scope=graph_scope(graph_url),
                http=http,
            )
        except BaseException:
            http.close()
            raise
        knobs.setdefault("tenant_label", tenant_id)
        # Graph calls on the lean client (a dozen per revocation); MSAL keeps httpx.
        graph_http = PinnedHttp(
            egress or EgressPolicy(), timeout=timeout_s, headers={"User-Agent": "jitadmin"}
        )
        client = cls(graph_url, tokens, http=graph_http, timeout_s=timeout_s, **knobs)
        client._owns_http = True
        client._token_http = http
        return client

    def __repr__(self) -> str:
        return f"GraphClient({self._base!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        if self._token_http is not None:
            self._token_http.close()

    # -- calls -------------------------------------------------------------------------

    def tenant_id(self) -> str:
        """The tenant GUID the tokens are issued for (see ``MsalTokenProvider.tenant_id``)."""
        if not isinstance(self._tokens, MsalTokenProvider):
            raise MisconfiguredError("this Graph client cannot tell which tenant it reaches")
        return self._tokens.tenant_id()

    def ensure_token(self) -> None:
        """Fail fast on credentials/consent problems before touching anything."""
        self._tokens.token()

    def granted_permissions(self, *, fresh: bool = False) -> frozenset[str] | None:
        """The application permissions of the current token (its ``roles`` claim); None when
        the token cannot be read. ``fresh`` drops the cached token first, so consent granted
        since it was issued counts."""
        if fresh:
            self._tokens.invalidate()
        return token_roles(self._tokens.token())

    def _lacks(self, needed: Need) -> bool:
        granted = token_roles(self._tokens.token())
        return granted is not None and not needed.met_by(granted)

    def get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        retry_on: Collection[tuple[int, str]] = (),
        headers: Mapping[str, str] | None = None,
        needs: Need | None = None,
    ) -> dict[str, Any]:
        response = self._send(
            "GET", path, params=params, retry_on=retry_on, headers=headers, needs=needs
        )
        return _json_object(response)

    def get_optional(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """GET that answers ``None`` for 404 instead of raising."""
        try:
            return self.get(path, params)
        except GraphNotFoundError:
            return None

    def list_all(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """All items of a collection, following ``@odata.nextLink`` on the same origin only.

        ``headers`` go with every page: Graph does not carry ``ConsistencyLevel`` into the
        next link (https://learn.microsoft.com/graph/paging)."""
        items: list[dict[str, Any]] = []
        page = self.get(path, params, headers=headers)
        for _ in range(_MAX_PAGES):
            value = page.get("value")
            if isinstance(value, list):
                items.extend(item for item in value if isinstance(item, dict))
            next_link = page.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return items
            if urlsplit(next_link)[:2] != self._origin:
                # Never send our bearer token to another host.
                raise MisconfiguredError(
                    f"Graph GET {path}: refusing @odata.nextLink to another origin "
                    f"({urlsplit(next_link).netloc})"
                )
            page = _json_object(self._send("GET", next_link, label_path=path, headers=headers))
        raise TransientError(f"Graph GET {path}: more than {_MAX_PAGES} pages")

    def post(
        self,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        idempotent: bool = False,
        retry_on: Collection[tuple[int, str]] = (),
        needs: Need | None = None,
    ) -> dict[str, Any]:
        response = self._send(
            "POST", path, body=body, idempotent=idempotent, retry_on=retry_on, needs=needs
        )
        return _json_object(response)

    def patch(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        retry_on: Collection[tuple[int, str]] = (),
        needs: Need | None = None,
    ) -> None:
        self._send("PATCH", path, body=body, retry_on=retry_on, needs=needs)

    def delete(
        self,
        path: str,
        *,
        retry_on: Collection[tuple[int, str]] = (),
        needs: Need | None = None,
    ) -> bool:
        """True if this call deleted it, False if it was already gone (404)."""
        try:
            self._send("DELETE", path, retry_on=retry_on, needs=needs)
        except GraphNotFoundError:
            return False
        return True

    def poll(self, probe: Callable[[], bool]) -> bool:
        """Call ``probe`` with backoff until it returns True or the budget runs out."""
        started = self._monotonic()
        for attempt in range(1, self._max_attempts + 1):
            if probe():
                return True
            delay = self._policy.delay(attempt)
            if (
                attempt >= self._max_attempts
                or self._monotonic() - started + delay > self._budget_s
            ):
                return False
            self._sleep(delay)
        return False

    # -- the retry loop ----------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
        retry_on: Collection[tuple[int, str]] = (),
        label_path: str | None = None,
        headers: Mapping[str, str] | None = None,
        needs: Need | None = None,
    ) -> httpx.Response:
        url = path if path.startswith(("http://", "https://")) else self._base + path
        label = f"Graph {method} {label_path or path}"
        safe = method in _IDEMPOTENT_METHODS if idempotent is None else idempotent
        secrets = sensitive_values(body)
        correlation = str(uuid.uuid4())
        started = self._monotonic()
        reauthenticated = False
        permission_checked = False
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_tenant(started, label)
            try:
                sent = {**(headers or {}), **self._headers(correlation)}
            except TransientError as exc:
                self._backoff(started, attempt, exc.retry_after_s, exc)
                continue
            try:
                response = self._http.request(method, url, params=params, json=body, headers=sent)
            except httpx.TransportError as exc:
                failure = TransientError(f"{label}: {_describe(exc)}")
                if not safe:
                    # The call may have landed; the caller re-reads before trying again.
                    raise failure from None
                self._backoff(started, attempt, None, failure)
                continue
            log.debug(
                "%s -> %s request-id=%s client-request-id=%s",
                label,
                response.status_code,
                response.headers.get("request-id"),
                correlation,
            )
            if response.status_code < 400:
                return response
            err = parse_error(response)
            if err.status == 401 and not reauthenticated:
                reauthenticated = True
                self._tokens.invalidate()
                continue
            if err.status == 401 and err.code == IDENTITY_NOT_FOUND:
                self._backoff(started, attempt, err.retry_after_s, self._consent_pending(label))
                continue
            if err.status == 403 and needs is not None and not permission_checked:
                permission_checked = True
                if self._missing_permission(needs, label, err.code):
                    continue  # a fresh token carries it now: try again with that one
            typed = typed_error(label, err, secrets)
            replication = (err.status, err.code or "") in retry_on
            if err.status == 429:
                self._hold_tenant(err.retry_after_s)
            # A concurrency violation was refused before anything changed: safe to resend.
            busy = is_retryable_conflict(err)
            if err.status == 429 or (err.status >= 500 and safe) or replication or busy:
                transient = TransientError(
                    typed.message, vendor_code=err.code, retry_after_s=err.retry_after_s
                )
                self._backoff(started, attempt, err.retry_after_s, transient)
                continue
            raise typed

    def _missing_permission(self, needs: Need, label: str, code: str | None) -> bool:
        """A 403 whose token lacks the permission is no replication window: drop the token
        once (consent may have been granted since it was issued), then name what is missing.
        True when the fresh token has it."""
        if not self._lacks(needs):
            return False  # the token has it: a directory role or replication said no
        self._tokens.invalidate()
        if self._lacks(needs):
            raise GraphForbiddenError(
                f"{label}: " + consent_advice([needs.permission], self._tenant_label),
                vendor_code=code,
            )
        return True

    def _consent_pending(self, label: str) -> AdapterError:
        """401 Authorization_IdentityNotFound: transient while the connection is new (consent
        replicates for a while after it is granted), a configuration problem after that."""
        message = (
            f"{label}: consent not yet effective in tenant {self._tenant_label} (Graph cannot "
            "establish the application's identity there; admin consent may still be "
            "replicating, or was never granted or was revoked)"
        )
        if self._monotonic() - self._created < self._consent_grace_s:
            return TransientError(message, vendor_code=IDENTITY_NOT_FOUND)
        raise MisconfiguredError(message, vendor_code=IDENTITY_NOT_FOUND)

    def _hold_tenant(self, retry_after_s: float | None) -> None:
        if retry_after_s:
            # Held no longer than a revocation may wait: an absurd Retry-After must not keep
            # this process from calling the tenant for longer than the worker reschedules.
            hold = min(retry_after_s, MAX_REVOKE_RETRY_AFTER_S)
            with self._hold_lock:
                self._hold_until = max(self._hold_until, self._monotonic() + hold)

    def _wait_for_tenant(self, started: float, label: str) -> None:
        """Sleep out a tenant-wide Retry-After, or hand the call back to the worker (which
        reschedules it after that wait) when the wait would overrun this call's budget."""
        wait = self._hold_until - self._monotonic()
        if wait <= 0:
            return
        if self._monotonic() - started + wait > self._budget_s:
            raise TransientError(f"{label}: tenant throttled (429)", retry_after_s=wait)
        self._sleep(wait)

    def _headers(self, correlation: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._tokens.token()}",
            "Accept": "application/json",
            "client-request-id": correlation,
        }

    def _backoff(
        self, started: float, attempt: int, retry_after_s: float | None, failure: AdapterError
    ) -> None:
        """Sleep before the next attempt, or raise ``failure`` when the budget is spent."""
        delay = self._policy.delay(attempt, retry_after_s)
        elapsed = self._monotonic() - started
        if attempt >= self._max_attempts or elapsed + delay > self._budget_s:
            if isinstance(failure, TransientError):
                raise failure
            raise TransientError(
                failure.message, vendor_code=failure.vendor_code, retry_after_s=retry_after_s
            )
        self._sleep(delay)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    if response.status_code == 204 or not response.content:
        return {}
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    return f"connection failed ({type(exc).__name__})"
