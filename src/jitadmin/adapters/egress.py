"""Enforcing the egress policy (``jitadmin.core.egress``) on every outbound connection.

A name is resolved here, every address it resolves to is checked, and the connection goes to
the checked address: the host name is never resolved a second time by someone else, so a DNS
answer that changes between check and connect (rebinding) changes nothing. TLS still names the
host (SNI and certificate check) and HTTP still sends its ``Host``.

- ``EgressTransport``: an httpx transport that does this for every request (PSA, Graph, the
  token requests MSAL makes through ``m365.auth.MsalHttpClient``); plain http is refused unless
  the allow list names the host. ``egress_client`` builds an ``httpx.Client`` on it that ignores
  proxy environment variables (a proxy would connect on our behalf, unchecked).
- ``checked_address``: the same check for LDAP (ldap3 is handed the checked address).
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx

from jitadmin.core.egress import EgressPolicy, EgressRefusedError, IpAddress, parse_address
from jitadmin.core.errors import TransientError

__all__ = ["EgressTransport", "checked_address", "egress_client", "resolve"]


def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address ``host`` resolves to (an address literal: itself), in resolver order."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise TransientError(f"{host} could not be resolved") from None
    found: list[IpAddress] = []
    for info in infos:
        address = parse_address(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    return found


def checked_address(policy: EgressPolicy, host: str, port: int) -> str:
    """The address to connect to for ``host``, after checking all of its addresses."""
    addresses = resolve(host, port)
    policy.check(host, addresses)
    return str(addresses[0])


class EgressTransport(httpx.BaseTransport):
    """Resolve, check, then send to the checked address; one pool per host name and port."""

    def __init__(self, policy: EgressPolicy, **transport_options: Any) -> None:
        self._policy = policy
        self._options = transport_options
        self._pools: dict[tuple[str, str, int], httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.scheme != "https":
            reason = self._policy.plain_http_refusal(host)
            if reason is not None:
                raise EgressRefusedError(f"{url.scheme}://{host}: {reason}")
        address = checked_address(self._policy, host, port)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=address),
            headers=request.headers,  # keeps Host: the name, not the address
            stream=request.stream,
            extensions=extensions,
        )
        return self._pool(url.scheme, host, port).handle_request(pinned)

    def _pool(self, scheme: str, host: str, port: int) -> httpx.HTTPTransport:
        # Per name: a TLS connection verified for one name is never reused for another name
        # that happens to share its address.
        key = (scheme, host.lower(), port)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = httpx.HTTPTransport(**self._options)
            return pool

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def egress_client(policy: EgressPolicy, **client_options: Any) -> httpx.Client:
    """An ``httpx.Client`` whose every connection passes the egress policy."""
    return httpx.Client(transport=EgressTransport(policy), trust_env=False, **client_options)
