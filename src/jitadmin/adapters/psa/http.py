"""HTTP plumbing the ConnectWise, Autotask and HaloPSA adapters share.

- Origin pinning: a request goes out only to an origin the adapter was configured with (or
  learnt from it, like Autotask's zone), so credentials never follow a URL elsewhere.
- Transport failures become ``TransientError`` raised outside the ``except`` block, so no
  ``__context__`` keeps the request (and its credential headers) reachable from the error.
- Short retries for idempotent reads; a long ``Retry-After`` is left to the caller.
- One mapping of HTTP statuses onto the adapter error taxonomy (``raise_mapped``); each vendor
  only reads its own error body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar

import httpx

from jitadmin.adapters.egress import egress_client
from jitadmin.adapters.pinned_http import PinnedHttp
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)
from jitadmin.core.retry import parse_retry_after

__all__ = [
    "Origin",
    "PsaAdapter",
    "PsaHttp",
    "absolute_url",
    "json_body",
    "numeric_id",
    "origin",
    "raise_mapped",
    "retry_after",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
Origin = tuple[str, str, int | None]


def origin(url: httpx.URL) -> Origin:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), url.port or default


def absolute_url(raw: str, what: str) -> httpx.URL:
    """``raw`` as an absolute http(s) URL ending in ``/``, or ``MisconfiguredError``."""
    try:
        url = httpx.URL(str(raw).rstrip("/") + "/")
    except (httpx.InvalidURL, TypeError):
        raise MisconfiguredError(f"{what} is not a valid URL") from None
    if url.scheme not in {"http", "https"} or not url.host:
        raise MisconfiguredError(f"{what} must be an absolute http(s) URL")
    return url


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), bounded; None if unusable."""
    return parse_retry_after(response.headers.get("Retry-After"))


class PsaHttp:
    """One vendor's HTTP client with origin pinning and bounded retries for reads."""

    def __init__(
        self,
        vendor: str,
        *,
        http: httpx.Client | None = None,
        egress: EgressPolicy | None = None,
        timeout_s: float = 10.0,
        read_attempts: int = 3,
        backoff_s: float = 0.25,
        max_retry_wait_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.vendor = vendor
        self._owns_http = http is None
        # Without a client of its own, every connection passes the egress policy (default:
        # public addresses only).
        self._http = http if http is not None else egress_client(egress or EgressPolicy())
        # Our own client: requests go out on the lean one (a ticket note per grant event).
        self._lean = (
            None if http is not None else PinnedHttp(egress or EgressPolicy(), timeout=timeout_s)
        )
        self._basic: dict[int, tuple[httpx.BasicAuth, str]] = {}  # id -> (auth, its header)
        self._timeout = httpx.Timeout(timeout_s)
        self._attempts = max(1, read_attempts)
        self._backoff_s = backoff_s
        self._max_wait_s = max_retry_wait_s
        self.sleep = sleep

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        if self._lean is not None:
            self._lean.close()

    def _basic_header(self, auth: httpx.BasicAuth) -> str:
        """The header BasicAuth adds (the same for every request), worked out once."""
        known = self._basic.get(id(auth))
        if known is None or known[0] is not auth:
            flow = auth.sync_auth_flow(httpx.Request("GET", "https://basic.invalid/"))
            known = self._basic[id(auth)] = (auth, next(flow).headers["Authorization"])
        return known[1]

    def send(
        self,
        method: str,
        url: httpx.URL,
        *,
        allowed: Origin,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """One request to ``url``, which must be on the ``allowed`` origin. Any status returns."""
        if origin(url) != allowed:
            raise MisconfiguredError(f"{self.vendor} pointed to another host: {url.host}")
        failure = ""
        lean = self._lean is not None and (auth is None or isinstance(auth, httpx.BasicAuth))
        try:
            if lean:
                assert self._lean is not None
                sent = dict(headers)
                if isinstance(auth, httpx.BasicAuth):
                    sent["Authorization"] = self._basic_header(auth)
                return self._lean.request(
                    method, str(url), params=params, json=json, data=data, headers=sent,
                    keep_request=True,
                )  # fmt: skip
            response = self._http.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=dict(headers),
                auth=auth,
                timeout=self._timeout,
                follow_redirects=False,
            )
        except httpx.TimeoutException:
            failure = "timed out"
        except httpx.TransportError as exc:
            failure = f"failed: {type(exc).__name__}: {exc}"
        if failure:
            raise TransientError(f"{self.vendor} {method} {url.path} {failure}")
        return response

    def retrying(self, call: Callable[[], T], what: str) -> T:
        """Run an idempotent ``call``, retrying transient failures a few times, briefly."""
        attempt = 1
        while True:
            try:
                return call()
            except TransientError as exc:
                wait = max(self._backoff_s * 2 ** (attempt - 1), exc.retry_after_s or 0.0)
                # A long Retry-After is the caller's to schedule, not ours to block on.
                if attempt >= self._attempts or wait > self._max_wait_s:
                    raise
                log.info("%s %s failed (%s); retrying", self.vendor, what, exc)
                self.sleep(wait)
                attempt += 1


class PsaAdapter:
    """Closing and the ``with`` protocol for an adapter that keeps its client in ``_http``."""

    _http: PsaHttp

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def raise_mapped(
    what: str,
    response: httpx.Response,
    not_found: type[AdapterError],
    message: str,
    *,
    auth_hint: str,
    code: str | None = None,
    throttled: bool = False,
    throttle_wait_s: float | None = None,
    rejected: bool = False,
) -> NoReturn:
    """A non-success ``response`` as the adapter error it means.

    ``message`` is the vendor's error text; ``throttled`` marks a throttle the vendor reports
    without 429; ``throttle_wait_s`` stands in for a missing (or zero) ``Retry-After`` on a
    throttle; ``rejected`` makes a 5xx a rejection (a vendor that reports validation as 500).
    """
    status = response.status_code
    detail = f"{what} returned {status}" + (f": {message}" if message else "")
    if status in (401, 403):
        raise MisconfiguredError(f"{detail} ({auth_hint})", code)
    if status == 404:
        raise not_found(detail, code)
    if status == 429 or throttled:
        wait = retry_after(response)
        if throttle_wait_s is not None:
            wait = wait or throttle_wait_s
        raise TransientError(detail, code, wait)
    if status >= 500 and not rejected:
        raise TransientError(detail, code, retry_after(response))
    if 300 <= status < 400:
        raise MisconfiguredError(f"{detail} (redirect: check base_url)", code)
    raise RejectedError(detail, code)


def json_body(response: httpx.Response, vendor: str) -> Any:
    """The decoded body; a non-JSON answer means the URL points at something else."""
    try:
        return response.json()
    except ValueError:
        raise MisconfiguredError(
            f"{vendor} {response.request.url.path} did not answer JSON (check base_url)"
        ) from None


def count(body: Any, key: str) -> int | None:
    """``body[key]`` as a count; anything else (text the server chose) is None, never echoed."""
    raw = body.get(key) if isinstance(body, Mapping) else None
    if isinstance(raw, bool):
        return None
    try:
        return None if raw is None else int(raw)
    except (TypeError, ValueError):
        return None


def numeric_id(
    raw: str, vendor: str, kind: str, error: type[AdapterError] = AdapterNotFoundError
) -> int:
    """The vendors' ids are integers; anything else cannot exist (and must not reach a URL)."""
    text = str(raw).strip()
    if not text.isascii() or not text.isdigit():
        raise error(f"no {vendor} {kind} {raw!r}: ids are numeric")
    return int(text)
