"""TicketSystem over Deskline's REST API (see the package docstring for the API).

Built only from the shared PSA plumbing, as the real adapters are: requests go out through
``PsaHttp`` (origin pinned to ``base_url``, transport failures as ``TransientError`` without the
request attached), reads are retried briefly, a note POST never is (the caller's outbox looks
for the marker first), and ``raise_mapped`` turns statuses into the adapter error taxonomy.
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

__all__ = ["DesklineTickets"]

_VENDOR = "Deskline"
_PAGE_SIZE = 100
_MAX_PAGES = 200  # a guard against a server whose "next" never ends
# The one 404 that means "nothing there" rather than "wrong base_url".
_UNKNOWN_COMPANY = "company_not_found"


class DesklineTickets(psa_http.PsaAdapter):
    """The MSP's Deskline as a ``TicketSystem``. Holds the API key; never shows it."""

    kind = "deskline"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        http: httpx.Client | None = None,
        egress: EgressPolicy | None = None,
        read_attempts: int = 3,
        retry_backoff_s: float = 0.25,
        max_retry_wait_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = psa_http.absolute_url(base_url, "Deskline base_url")
        self._api = self._base.join("api/v1/")
        self._api_key = api_key
        self._http = psa_http.PsaHttp(
            _VENDOR, http=http, timeout_s=timeout_s, read_attempts=read_attempts,
            backoff_s=retry_backoff_s, max_retry_wait_s=max_retry_wait_s, sleep=sleep,
            egress=egress,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"DesklineTickets(base_url={str(self._base)!r})"

    # --- TicketSystem -------------------------------------------------------------------

    def list_open_tickets(self, company_id: str) -> list[Ticket]:
        cid = _numeric_id(company_id, "company", MisconfiguredError)
        tickets: dict[str, Ticket] = {}
        try:
            for item in self._pages(f"companies/{cid}/tickets", {"status": "open"}, "tickets"):
                ticket = _to_ticket(item)
                tickets.setdefault(ticket.id, ticket)  # pages may overlap if tickets move
        except AdapterNotFoundError as exc:
            if exc.vendor_code == _UNKNOWN_COMPANY:
                return []
            # Any other 404 on a listing means base_url points at something else.
            raise MisconfiguredError(f"{exc.message} (check base_url)", exc.vendor_code) from None
        return sorted(tickets.values(), key=lambda t: int(t.id), reverse=True)

    def get_ticket(self, ticket_id: str) -> Ticket:
        tid = _numeric_id(ticket_id, "ticket")
        return _to_ticket(_json(self._read(self._api.join(f"tickets/{tid}"))))

    def find_note(self, ticket_id: str, marker: str) -> str | None:
        if not marker:
            raise ValueError("marker must not be empty")
        tid = _numeric_id(ticket_id, "ticket")
        for note in self._pages(f"tickets/{tid}/notes", {}, "notes"):
            if carries_marker(str(note.get("text") or ""), marker):
                return str(note["id"])
        return None

    def add_note(self, ticket_id: str, text: str) -> str:
        tid = _numeric_id(ticket_id, "ticket")
        body = {"text": text, "internal": True}  # internal: never shown to the customer
        created = self._send("POST", self._api.join(f"tickets/{tid}/notes"), json=body)
        try:
            note = created.json()
        except ValueError:
            note = None
        if not isinstance(note, Mapping) or note.get("id") is None:
            # The note may well be stored: transient, so the outbox looks for its marker.
            raise TransientError("Deskline accepted the note POST but sent no note id")
        return str(note["id"])

    def check(self) -> list[str]:
        account = _json(self._read(self._api.join("account"), not_found=MisconfiguredError))
        name = account.get("name") if isinstance(account, Mapping) else None
        return [
            f"API root {self._api}",
            f"API key accepted for account {str(name or '?')[:100]}",
            f"{psa_http.count(account, 'open_tickets')} open tickets visible",
        ]

    # --- HTTP ---------------------------------------------------------------------------

    def _pages(self, path: str, params: Mapping[str, str], key: str) -> Iterator[Mapping[str, Any]]:
        """Every record of a listing, following the server's ``next`` (on our origin only)."""
        url = self._api.join(path)
        query: Mapping[str, str] | None = {**params, "page": "1", "per_page": str(_PAGE_SIZE)}
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = _json(self._read(url, query))
            items = page.get(key) if isinstance(page, Mapping) else None
            if not isinstance(items, list):
                raise MisconfiguredError(f"Deskline {url.path} did not return {key}")
            yield from (i for i in items if isinstance(i, Mapping))
            following = page.get("next")
            if not isinstance(following, str) or not following or following in seen:
                return
            seen.add(following)
            url, query = url.join(following), None  # the link carries the whole query
        raise MisconfiguredError(f"Deskline {path} paging did not end after {_MAX_PAGES} pages")

    def _read(
        self,
        url: httpx.URL,
        params: Mapping[str, str] | None = None,
        *,
        not_found: type[AdapterError] = AdapterNotFoundError,
    ) -> httpx.Response:
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
        # send() checks the origin before the key goes out: a "next" elsewhere never gets it.
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        response = self._http.send(
            method, url, allowed=psa_http.origin(self._base), headers=headers, params=params,
            json=json,
        )  # fmt: skip
        if not response.is_success:
            _raise_for(f"Deskline {method} {url.path}", response, not_found)
        return response


def _raise_for(what: str, response: httpx.Response, not_found: type[AdapterError]) -> NoReturn:
    code, message = _vendor_error(response)
    psa_http.raise_mapped(
        what, response, not_found, message, auth_hint="check the API key", code=code
    )


def _vendor_error(response: httpx.Response) -> tuple[str | None, str]:
    """``(code, message)`` from ``{"error": {"code", "message"}}``, if the body is that."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None, ""
    code = error.get("code")
    return (str(code)[:100] if code else None), str(error.get("message") or "")[:300]


def _json(response: httpx.Response) -> Any:
    return psa_http.json_body(response, _VENDOR)


def _to_ticket(item: Any) -> Ticket:
    try:
        return Ticket(
            id=str(item["id"]),
            number=str(item["reference"]),
            summary=str(item.get("subject") or ""),
            status=str(item.get("status_label") or item["state"]),
            is_closed=item["state"] == "closed",
            company_id=str(item["company_id"]),
        )
    except (KeyError, TypeError):
        raise MisconfiguredError("Deskline returned a ticket in an unexpected shape") from None


def _numeric_id(raw: str, kind: str, error: type[AdapterError] = AdapterNotFoundError) -> int:
    return psa_http.numeric_id(raw, _VENDOR, kind, error)
