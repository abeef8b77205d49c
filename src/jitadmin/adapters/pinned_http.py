"""A lean HTTP/1.1 client on the standard library's ``http.client``, under the egress policy.

The Graph client makes about a dozen calls per revocation; through httpx each cost ≈ 0.55 ms of
CPU before the first byte of our own code ran, through ``http.client`` ≈ 0.12 ms (measured
against the emulator, docs/benchmarks.md). This sends the same requests with the same rules as
``adapters.egress.EgressTransport``: every request resolves the name and checks every address
(``checked_address``) and connects to the checked one; TLS names the host (SNI and certificate
check against certifi's roots, like httpx) and ``Host`` carries the name; plain http only where
the policy allows it; no proxies, no redirects followed. Answers are ``httpx.Response`` objects
and failures ``httpx.TransportError`` subclasses, so callers see one type whichever client
they were given.

Connections are kept per (scheme, name, port, checked address): a connection verified for one
name is never reused for another, and a name that resolves elsewhere gets a new connection. An
idle connection the server has closed (readable while idle) is dropped before reuse, so a
request is never sent on a socket that is already gone.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import httpx

from jitadmin.adapters.egress import checked_address
from jitadmin.core.egress import EgressPolicy, EgressRefusedError

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_IDLE_PER_KEY = 16


class _PinnedHttps(http.client.HTTPSConnection):
    """Connects to the checked address, speaks TLS to the name."""

    def __init__(self, name: str, address: str, port: int, timeout: float, context: Any) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self._name = name
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self._name)
        except BaseException:
            sock.close()
            raise


class PinnedHttp:
    """``request(method, url, params=, json=, headers=)`` like ``httpx.Client``, and ``close()``."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._tls = ssl_context or ssl.create_default_context(cafile=certifi.where())
        self._idle: dict[tuple[str, str, int, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        keep_request: bool = False,
    ) -> httpx.Response:
        """``data``: a form body. ``keep_request``: attach an ``httpx.Request`` to the answer
        (for callers that read ``response.url``; it costs a second parse of the URL)."""
        parts = urlsplit(url)
        scheme, name = parts.scheme, parts.hostname
        if scheme not in _DEFAULT_PORTS or not name:
            raise EgressRefusedError(f"scheme {scheme!r}: only http and https URLs are sent")
        port = parts.port or _DEFAULT_PORTS[scheme]
        if scheme != "https":
            reason = self._policy.plain_http_refusal(name)
            if reason is not None:
                raise EgressRefusedError(f"{scheme}://{name}: {reason}")
        address = checked_address(self._policy, name, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if params:
            target += ("&" if parts.query else "?") + urlencode(params)
        sent = {"Host": parts.netloc.rpartition("@")[2], **self._headers, **(headers or {})}
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        elif data is not None:
            body = urlencode(data).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        key = (scheme, name.lower(), port, address)
        conn = self._checkout(key)
        try:
            conn.request(method, target, body=body, headers=sent)
            answer = conn.getresponse()
            content = answer.read()
        except TimeoutError as exc:
            conn.close()
            raise httpx.ReadTimeout(f"no answer in time: {type(exc).__name__}") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise httpx.ConnectError(f"connection failed: {type(exc).__name__}") from None
        if answer.will_close:
            conn.close()
        else:
            self._checkin(key, conn)
        # No ``request`` attached: building an httpx.Request parses the URL again, which cost
        # more than the call; nothing here reads it (raise_for_status would need it).
        request = httpx.Request(method, url) if keep_request else None
        return httpx.Response(
            answer.status, headers=answer.getheaders(), content=content, request=request
        )

    def _checkout(self, key: tuple[str, str, int, str]) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if conn.sock is not None and not _closed_by_peer(conn.sock):
                    return conn
                conn.close()
        scheme, name, port, address = key
        if scheme == "https":
            return _PinnedHttps(name, address, port, self._timeout, self._tls)
        return http.client.HTTPConnection(address, port, timeout=self._timeout)

    def _checkin(self, key: tuple[str, str, int, str], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _MAX_IDLE_PER_KEY:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            pools, self._idle = list(self._idle.values()), {}
        for idle in pools:
            for conn in idle:
                conn.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable was closed (or spoken on) by the server."""
    try:
        if hasattr(select, "poll"):
            # poll, not select: select refuses descriptors above 1024, which a busy worker has.
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
