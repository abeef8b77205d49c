"""The agent's HTTPS client: outbound only, every request signed, through ``HTTPS_PROXY``
when set (httpx reads the proxy variables itself)."""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx

from jitadmin.agent.signing import signature_headers


class ServerUnreachableError(Exception):
    """The server did not answer (network, TLS, 5xx): the spool and fail-safe take over."""


class ServerRefusedError(Exception):
    """The server answered 4xx: retrying the same request will not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


def tls_verify(server_ca_pem: str | None) -> ssl.SSLContext | bool:
    """The server's CA when given (a private CA), else the system's trust store."""
    if not server_ca_pem:
        return True
    return ssl.create_default_context(cadata=server_ca_pem)


class ServerClient:
    def __init__(
        self, server: str, private_key: str, agent_id: str | None = None,
        server_ca_pem: str | None = None, timeout_s: float = 10.0,
    ) -> None:  # fmt: skip
        self.server = server.rstrip("/")
        if not self.server.startswith("https://"):
            raise ValueError("the server URL must start with https://")
        self._key = private_key
        self.agent_id = agent_id
        self._timeout = timeout_s
        self._http = httpx.Client(
            base_url=self.server, verify=tls_verify(server_ca_pem), timeout=timeout_s,
            trust_env=True, follow_redirects=False,
        )  # fmt: skip

    def close(self) -> None:
        self._http.close()

    def post(self, path: str, body: dict[str, Any], *, wait_s: float = 0.0) -> dict[str, Any]:
        full = f"/api/v1{path}"
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = signature_headers(self._key, self.agent_id, "POST", full, data)
        headers["Content-Type"] = "application/json"
        try:
            response = self._http.post(
                full, content=data, headers=headers, timeout=self._timeout + wait_s
            )
        except httpx.HTTPError as error:
            raise ServerUnreachableError(f"{type(error).__name__}: {error}") from None
        if response.status_code >= 500:
            raise ServerUnreachableError(f"server answered {response.status_code}")
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail") or response.text[:200])
            except ValueError:
                detail = response.text[:200]
            raise ServerRefusedError(response.status_code, detail)
        answer: dict[str, Any] = response.json()
        return answer

    def lease(self, wait_s: float) -> dict[str, Any]:
        return self.post(f"/agent/jobs/lease?wait={wait_s:g}", {}, wait_s=wait_s)
