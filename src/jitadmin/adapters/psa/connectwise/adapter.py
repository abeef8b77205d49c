"""TicketSystem over the ConnectWise PSA (Manage) REST API
(https://developer.connectwise.com/Products/ConnectWise_PSA).

``base_url`` is the REST root ending in ``/apis/3.0`` (codebase included). Vendor errors map to
the adapter taxonomy in ``jitadmin.core.errors``. Only idempotent GETs are retried here, briefly;
a note POST is never retried blindly (ConnectWise has no idempotency key): the caller's outbox
looks for the marker first.
"""

from __future__ import annotations

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

__all__ = ["ConnectWiseTickets"]

_ACCEPT = "application/vnd.connectwise.com+json; version=2022.1"
_TICKET_FIELDS = "id,summary,status/name,company/id,closedFlag"
_PAGE_SIZE = 100
_MAX_PAGES = 200  # a guard against a server whose Link header never ends


class ConnectWiseTickets(psa_http.PsaAdapter):
    """The MSP's ConnectWise PSA as a ``TicketSystem``. Holds the private key; never shows it."""

    kind = "connectwise"

    def __init__(
        self,
        base_url: str,
        company_id: str,
        public_key: str,
        private_key: str,
        client_id: str,
        *,
        timeout_s: float = 10.0,
        http: httpx.Client | None = None,
        egress: EgressPolicy | None = None,
        get_attempts: int = 3,
        retry_backoff_s: float = 0.25,
        max_retry_wait_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = psa_http.absolute_url(base_url, "ConnectWise base_url")
        self._company_id = company_id
        # Credentials live only in this auth object and are attached per request, after the
        # target URL has been checked against base_url (see _send).
        self._auth = httpx.BasicAuth(f"{company_id}+{public_key}", private_key)
        self._headers = {"clientId": client_id, "Accept": _ACCEPT, "Cache-Control": "no-cache"}
        self._http = psa_http.PsaHttp(
            "ConnectWise", http=http, timeout_s=timeout_s, read_attempts=get_attempts,
            backoff_s=retry_backoff_s, max_retry_wait_s=max_retry_wait_s, sleep=sleep,
            egress=egress,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"ConnectWiseTickets(base_url={str(self._base)!r}, company_id={self._company_id!r})"

    # --- TicketSystem -------------------------------------------------------------------

    def list_open_tickets(self, company_id: str) -> list[Ticket]:
        params = {
            "conditions": f"company/id={_numeric_id(company_id, 'company', MisconfiguredError)}"
            " and closedFlag=false",
            "fields": _TICKET_FIELDS,
            "orderBy": "id desc",
        }
        tickets: dict[str, Ticket] = {}
        # 404 on a collection means the URL (codebase) is wrong, not that nothing matched.
        for item in self._get_all("service/tickets", params, not_found=MisconfiguredError):
            ticket = _to_ticket(item)
            tickets.setdefault(ticket.id, ticket)  # pages may overlap if tickets move meanwhile
        return list(tickets.values())

    def get_ticket(self, ticket_id: str) -> Ticket:
        tid = _numeric_id(ticket_id, "ticket")
        response = self._get(self._url(f"service/tickets/{tid}"), {"fields": _TICKET_FIELDS})
        return _to_ticket(_json(response))

    def find_note(self, ticket_id: str, marker: str) -> str | None:
        if not marker:
            raise ValueError("marker must not be empty")
        tid = _numeric_id(ticket_id, "ticket")
        params = {"fields": "id,text", "orderBy": "id asc"}
        term = _search_term(marker)
        if term:
            params["conditions"] = f"text contains {_quote(term)}"
        for item in self._get_all(f"service/tickets/{tid}/notes", params):
            # The server-side match is loose (case, LIKE wildcards): confirm it exactly.
            if isinstance(item, Mapping) and carries_marker(str(item.get("text", "")), marker):
                return str(item["id"])
        return None

    def add_note(self, ticket_id: str, text: str) -> str:
        tid = _numeric_id(ticket_id, "ticket")
        body = {
            "text": text,
            # Internal only (one display flag must be set), and no e-mail to the customer.
            "internalAnalysisFlag": True,
            "detailDescriptionFlag": False,
            "resolutionFlag": False,
            "processNotifications": False,
        }
        response = self._send("POST", self._url(f"service/tickets/{tid}/notes"), json=body)
        try:
            note = response.json()
        except ValueError:
            note = None
        if not isinstance(note, Mapping) or "id" not in note:
            # The note may well be stored: transient, so the outbox looks for its marker.
            raise TransientError("ConnectWise accepted the note POST but sent no note id")
        return str(note["id"])

    def check(self) -> list[str]:
        # A count is one cheap authenticated call; 404 here means a wrong codebase in base_url.
        response = self._get(
            self._url("service/tickets/count"),
            {"conditions": "closedFlag=false"},
            not_found=MisconfiguredError,
        )
        body = _json(response)
        count = psa_http.count(body, "count")
        return [
            f"REST root {self._base}",
            f"authenticated as {self._company_id}+<public key>",
            f"{count} open tickets visible",
        ]

    # --- HTTP ---------------------------------------------------------------------------

    def _url(self, path: str) -> httpx.URL:
        return self._base.join(path)

    def _get_all(
        self,
        path: str,
        params: Mapping[str, str],
        not_found: type[AdapterError] = AdapterNotFoundError,
    ) -> Iterator[Any]:
        """Every item of a list endpoint, following ``Link: <...>; rel="next"``."""
        url = self._url(path)
        query: Mapping[str, str] | None = {**params, "page": "1", "pageSize": str(_PAGE_SIZE)}
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            response = self._get(url, query, not_found=not_found)
            page = _json(response)
            if not isinstance(page, list):
                raise MisconfiguredError(f"ConnectWise {path} did not return a list")
            yield from page
            following = response.links.get("next", {}).get("url")
            if not following or following in seen:
                return
            seen.add(following)
            url, query = response.url.join(following), None  # the link carries the whole query
        raise MisconfiguredError(f"ConnectWise {path} paging did not end after {_MAX_PAGES} pages")

    def _get(
        self,
        url: httpx.URL,
        params: Mapping[str, str] | None = None,
        *,
        not_found: type[AdapterError] = AdapterNotFoundError,
    ) -> httpx.Response:
        """A GET with a few short retries on transient failures (GETs are idempotent)."""
        return self._http.retrying(
            lambda: self._send("GET", url, params=params, not_found=not_found), f"GET {url.path}"
        )

    def _send(
        self,
        method: str,
        url: httpx.URL,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        not_found: type[AdapterError] = AdapterNotFoundError,
    ) -> httpx.Response:
        # Never hand the credentials to a host a Link header (or anything else) names: send
        # checks the origin before the auth is attached.
        response = self._http.send(
            method, url, allowed=psa_http.origin(self._base), headers=self._headers, params=params,
            json=json, auth=self._auth,
        )  # fmt: skip
        if not response.is_success:
            _raise_for(f"ConnectWise {method} {url.path}", response, not_found)
        return response


def _raise_for(what: str, response: httpx.Response, not_found: type[AdapterError]) -> NoReturn:
    code, message = _vendor_error(response)
    hint = "check the API keys, clientId and role"
    psa_http.raise_mapped(what, response, not_found, message, auth_hint=hint, code=code)


def _vendor_error(response: httpx.Response) -> tuple[str | None, str]:
    """``(code, message)`` from the ``{"code","message","errors":[...]}`` body, if present."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, Mapping):
        return None, ""
    parts = [str(body.get("message") or "")]
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, Mapping) and error.get("message"):
            parts.append(str(error["message"]))
    code = body.get("code")
    return (str(code) if code else None), " ".join(p for p in parts if p)[:500]


def _json(response: httpx.Response) -> Any:
    return psa_http.json_body(response, "ConnectWise")


def _to_ticket(item: Any) -> Ticket:
    try:
        return Ticket(
            id=str(item["id"]),
            number=str(item["id"]),
            summary=str(item.get("summary") or ""),
            status=str((item.get("status") or {}).get("name") or ""),
            is_closed=bool(item["closedFlag"]),
            company_id=str(item["company"]["id"]),
        )
    except (KeyError, TypeError, AttributeError):
        raise MisconfiguredError("ConnectWise returned a ticket in an unexpected shape") from None


def _numeric_id(raw: str, kind: str, error: type[AdapterError] = AdapterNotFoundError) -> int:
    return psa_http.numeric_id(raw, "ConnectWise", kind, error)


def _search_term(marker: str) -> str:
    """The longest bracket-free run of the marker.

    ``contains`` is believed to become SQL ``LIKE`` on the server, where ``[...]`` is a character
    class, so ``[jit:...:grant]`` would not match itself. The exact check happens client-side.
    """
    runs = marker.replace("[", "]").split("]")
    return max(runs, key=len).strip()


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
