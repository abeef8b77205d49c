"""TicketSystem over the HaloPSA API (https://halopsa.com/apidoc/).

``base_url`` is the instance root (the API is under ``{base_url}/api``); ``auth_url`` is the
authorisation server (token at ``{auth_url}/token``). Without a configured ``tenant`` the adapter
takes the one ``{base_url}/api/authinfo`` reports. The client secret goes only to ``auth_url``,
the Bearer token only to ``base_url``. Reads are retried briefly; a note POST never is: the
caller's outbox looks for the marker first (Halo has no idempotency key).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import httpx

from jitadmin.adapters.psa import http as psa_http
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    MisconfiguredError,
    TransientError,
)
from jitadmin.core.texts import carries_marker
from jitadmin.ports import Ticket

__all__ = ["HaloTickets"]

DEFAULT_OUTCOME_ID = 7  # the built-in private-note outcome; Halo requires one
_RATE_LIMIT_WAIT_S = 30.0  # Halo sends no Retry-After; its window is 5 rolling minutes
_TOKEN_MARGIN_S = 60.0
_MAX_PAGES = 200
# The HTML copy of a note: breaks become lines, other tags go, to find the marker line.
_HTML_BREAK = re.compile(r"<br\s*/?>|</p>|</div>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^>]*>")


class HaloTickets(psa_http.PsaAdapter):
    """The MSP's HaloPSA as a ``TicketSystem``. Holds the client secret; never shows it."""

    kind = "halopsa"

    def __init__(
        self,
        base_url: str,
        auth_url: str,
        client_id: str,
        client_secret: str,
        tenant: str | None = None,
        *,
        outcome_id: int = DEFAULT_OUTCOME_ID,
        page_size: int = 100,
        timeout_s: float = 10.0,
        http: httpx.Client | None = None,
        egress: EgressPolicy | None = None,
        read_attempts: int = 3,
        retry_backoff_s: float = 0.25,
        max_retry_wait_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = psa_http.absolute_url(base_url, "HaloPSA base_url")
        self._auth = psa_http.absolute_url(auth_url, "HaloPSA auth_url")
        self._client_id = client_id
        self._secret = client_secret
        self._tenant = (tenant or "").strip() or None
        try:
            self._outcome_id = int(outcome_id)
        except (TypeError, ValueError):
            raise MisconfiguredError("HaloPSA outcome_id must be an integer") from None
        self._page_size = max(1, page_size)
        self._http = psa_http.PsaHttp(
            "HaloPSA", http=http, timeout_s=timeout_s, read_attempts=read_attempts,
            backoff_s=retry_backoff_s, max_retry_wait_s=max_retry_wait_s, sleep=sleep,
            egress=egress,
        )  # fmt: skip
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None  # (access token, monotonic expiry)
        self._statuses: dict[int, str] | None = None

    def __repr__(self) -> str:
        return f"HaloTickets(base_url={str(self._base)!r}, client_id={self._client_id!r})"

    # --- TicketSystem -------------------------------------------------------------------

    def list_open_tickets(self, company_id: str) -> list[Ticket]:
        cid = _numeric_id(company_id, "client", MisconfiguredError)
        tickets = {
            str(item["id"]): self._to_ticket(item, closed=False) for item in self._open_tickets(cid)
        }
        return sorted(tickets.values(), key=lambda t: int(t.id), reverse=True)  # newest first

    def get_ticket(self, ticket_id: str) -> Ticket:
        tid = _numeric_id(ticket_id, "ticket")
        item = _json(self._read(f"Tickets/{tid}", {"includedetails": "false"}))
        if not isinstance(item, Mapping) or "id" not in item:
            raise MisconfiguredError("HaloPSA returned a ticket in an unexpected shape")
        closed = bool(item.get("hasbeenclosed"))
        if closed:
            # hasbeenclosed stays set when a ticket is reopened: the open list decides.
            client = _numeric_id(str(item.get("client_id")), "client", MisconfiguredError)
            closed = not any(int(t["id"]) == tid for t in self._open_tickets(client))
        return self._to_ticket(item, closed=closed)

    def find_note(self, ticket_id: str, marker: str) -> str | None:
        if not marker:
            raise ValueError("marker must not be empty")
        tid = _numeric_id(ticket_id, "ticket")
        for action in self._pages("Actions", {"ticket_id": str(tid)}, "actions"):
            html = _HTML_BREAK.sub("\n", str(action.get("note_html") or ""))
            texts = (str(action.get("note") or ""), _HTML_TAG.sub("", html))
            if any(carries_marker(text, marker) for text in texts):
                return str(action["id"])
        return None

    def add_note(self, ticket_id: str, text: str) -> str:
        tid = _numeric_id(ticket_id, "ticket")
        # Always an array, even for one action; private, no e-mail.
        body = [{
            "ticket_id": tid, "outcome_id": self._outcome_id, "note": text,
            "hiddenfromuser": True, "sendemail": False,
        }]  # fmt: skip
        created = _json(self._api("POST", "Actions", json=body))
        first = created[0] if isinstance(created, list) and created else created
        if not isinstance(first, Mapping) or first.get("id") is None:
            # The note may well be stored: transient, so the outbox looks for its marker.
            raise TransientError("HaloPSA accepted the action POST but sent no action id")
        return str(first["id"])

    def check(self) -> list[str]:
        info = self._authinfo()
        findings = [f"resource server {self._base}api"]
        reported = str(info.get("auth_url") or "").rstrip("/")
        if reported and reported != str(self._auth).rstrip("/"):
            findings.append(f"note: authinfo names auth server {reported}, configured {self._auth}")
        with self._lock:
            self._token = None
        self._bearer()
        findings.append(f"token issued to client {self._client_id} (tenant {self._tenant})")
        outcomes = _json(self._read("outcome", {}))
        known = {
            int(o["id"]): str(o.get("outcome") or o.get("buttonname") or o["id"])
            for o in (outcomes if isinstance(outcomes, list) else [])
            if isinstance(o, Mapping) and str(o.get("id", "")).isdigit()
        }
        if self._outcome_id not in known:
            choices = ", ".join(f"{k} {v}" for k, v in sorted(known.items()))
            raise MisconfiguredError(f"HaloPSA outcome_id {self._outcome_id} unknown ({choices})")
        findings.append(f"notes use outcome {self._outcome_id} {known[self._outcome_id]!r}")
        params = {"open_only": "true", "pageinate": "true", "page_size": "1", "page_no": "1"}
        page = _json(self._read("Tickets", params))
        findings.append(f"{psa_http.count(page, 'record_count')} open tickets visible")
        return findings

    # --- Halo specifics -----------------------------------------------------------------

    def _open_tickets(self, client_id: int) -> Iterator[Mapping[str, Any]]:
        params = {
            "client_id": str(client_id),
            "open_only": "true",
            "order": "id",
            "orderdesc": "true",
        }
        return self._pages("Tickets", params, "tickets")

    def _pages(self, path: str, params: Mapping[str, str], key: str) -> Iterator[Mapping[str, Any]]:
        """Every record of a listing, page by page (``pageinate`` is Halo's spelling).

        Paging Actions the same way as Tickets is not confirmed; ``count`` alone may cap.
        """
        seen = 0
        for number in range(1, _MAX_PAGES + 1):
            query = {**params, "pageinate": "true", "page_size": str(self._page_size),
                     "page_no": str(number)}  # fmt: skip
            page = _json(self._read(path, query, not_found=MisconfiguredError))
            items = page.get(key) if isinstance(page, Mapping) else None
            if not isinstance(items, list):
                raise MisconfiguredError(f"HaloPSA {path} did not return {key}")
            yield from (i for i in items if isinstance(i, Mapping))
            seen += len(items)
            total = psa_http.count(page, "record_count")
            if len(items) < self._page_size or (total is not None and seen >= total):
                return
        raise MisconfiguredError(f"HaloPSA {path} paging did not end after {_MAX_PAGES} pages")

    def _to_ticket(self, item: Mapping[str, Any], *, closed: bool) -> Ticket:
        try:
            status = int(item.get("status_id") or 0)
            return Ticket(
                id=str(item["id"]),
                number=str(item["id"]),
                summary=str(item.get("summary") or ""),
                status=self._status_names().get(status, "Closed" if closed else "Open"),
                is_closed=closed,
                company_id=str(item["client_id"]),
            )
        except (KeyError, TypeError, ValueError):
            raise MisconfiguredError("HaloPSA returned a ticket in an unexpected shape") from None

    def _status_names(self) -> dict[int, str]:
        """Status names are per instance; read once, optional."""
        if self._statuses is None:
            try:
                listed = _json(self._read("Status", {}))
            except AdapterError:
                return {}
            self._statuses = {
                int(s["id"]): str(s.get("name") or s["id"])
                for s in (listed if isinstance(listed, list) else [])
                if isinstance(s, Mapping) and str(s.get("id", "")).isdigit()
            }
        return self._statuses

    # --- auth ---------------------------------------------------------------------------

    def _authinfo(self) -> Mapping[str, Any]:
        url = self._base.join("api/authinfo")
        response = self._http.retrying(
            lambda: self._http.send("GET", url, allowed=psa_http.origin(self._base), headers={}),
            "authinfo",
        )
        if not response.is_success:
            _raise_for("HaloPSA GET /api/authinfo", response, MisconfiguredError)
        info = _json(response)
        return info if isinstance(info, Mapping) else {}

    def _bearer(self) -> str:
        with self._lock:
            if self._token is not None and self._token[1] > self._monotonic():
                return self._token[0]
        if self._tenant is None:
            self._tenant = str(self._authinfo().get("tenant_id") or "").strip() or None
        url = self._auth.join("token")
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._secret, "scope": "all"}  # fmt: skip
        response = self._http.retrying(
            lambda: self._http.send(
                "POST", url, allowed=psa_http.origin(self._auth),
                headers={"Accept": "application/json"},
                params={"tenant": self._tenant} if self._tenant else None, data=form,
            ),
            "token",
        )  # fmt: skip
        if response.status_code in (400, 401, 403):
            code = _vendor_message(response)
            raise MisconfiguredError(
                f"HaloPSA refused the client credentials ({code}): check client_id, "
                "client_secret and tenant"
            )
        if not response.is_success:
            _raise_for("HaloPSA POST /auth/token", response, MisconfiguredError)
        body = _json(response)
        token = body.get("access_token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise MisconfiguredError("HaloPSA token response has no access_token")
        lifetime = float(body.get("expires_in") or 3600)
        with self._lock:
            self._token = (token, self._monotonic() + max(lifetime - _TOKEN_MARGIN_S, 1.0))
        return token

    # --- HTTP ---------------------------------------------------------------------------

    def _read(
        self, path: str, params: Mapping[str, str], *,
        not_found: type[AdapterError] = AdapterNotFoundError,
    ) -> httpx.Response:  # fmt: skip
        return self._http.retrying(
            lambda: self._api("GET", path, params=params, not_found=not_found), f"GET {path}"
        )

    def _api(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None,
        json: Any = None, not_found: type[AdapterError] = AdapterNotFoundError,
    ) -> httpx.Response:  # fmt: skip
        url = self._base.join(f"api/{path}")
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._bearer()}", "Accept": "application/json"}
            response = self._http.send(
                method, url, allowed=psa_http.origin(self._base), headers=headers, params=params,
                json=json,
            )  # fmt: skip
            if response.status_code == 401 and attempt == 1:
                with self._lock:
                    self._token = None  # expired or revoked: one fresh token, one more try
                continue
            if not response.is_success:
                _raise_for(f"HaloPSA {method} {url.path}", response, not_found)
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def _raise_for(what: str, response: httpx.Response, not_found: type[AdapterError]) -> NoReturn:
    psa_http.raise_mapped(
        what, response, not_found, _vendor_message(response),
        auth_hint="check the API application's permissions", throttle_wait_s=_RATE_LIMIT_WAIT_S,
    )  # fmt: skip


def _vendor_message(response: httpx.Response) -> str:
    """Halo's error bodies vary: JSON with one of several keys, or plain text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, Mapping):
        for key in ("Message", "errorMessage", "error_description", "error", "message"):
            if body.get(key):
                return str(body[key])[:300]
    return ""


def _json(response: httpx.Response) -> Any:
    return psa_http.json_body(response, "HaloPSA")


def _numeric_id(raw: str, kind: str, error: type[AdapterError] = AdapterNotFoundError) -> int:
    return psa_http.numeric_id(raw, "HaloPSA", kind, error)
