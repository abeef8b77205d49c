"""TicketSystem over the Autotask PSA REST API
(https://ww1.autotask.net/help/DeveloperHelp/Content/APIs/REST/REST_API_Home.htm).

``base_url`` is the zone-discovery root (real: ``https://webservices.autotask.net/ATServicesRest``);
the adapter asks ``{base_url}/V1.0/zoneInformation?user=`` for the zone's REST root, caches it,
and asks again after a 401. Credentials (three headers) go only to that zone, and only when the
zone sits in the discovery host's own domain. Reads are retried briefly; a note POST never is:
Autotask has no idempotency key, so the caller's outbox looks for the marker first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import httpx

from jitadmin.adapters.psa import http as psa_http
from jitadmin.adapters.psa.autotask.budget import RequestBudget, Usage
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    MisconfiguredError,
    TransientError,
)
from jitadmin.core.texts import carries_marker
from jitadmin.ports import Ticket

__all__ = ["AutotaskTickets"]

log = logging.getLogger(__name__)

COMPLETE = 5  # "Complete" is a fixed system status; open means status != 5
_TICKET_FIELDS = ["id", "ticketNumber", "title", "status", "companyID"]
_MAX_PAGE = 500
_MAX_PAGES = 200  # a guard against paging that never ends
_TITLE_MAX = 250
_AUTH_HINT = "check the username, secret, integration code and the API-only security level"


class AutotaskTickets(psa_http.PsaAdapter):
    """The MSP's Autotask as a ``TicketSystem``. Holds the secret; never shows it."""

    kind = "autotask"

    def __init__(
        self,
        base_url: str,
        username: str,
        secret: str,
        integration_code: str,
        *,
        note_type: int = 1,
        publish: int = 2,  # 2 = Internal Users (1 = All Autotask Users)
        page_size: int = _MAX_PAGE,
        timeout_s: float = 10.0,
        http: httpx.Client | None = None,
        egress: EgressPolicy | None = None,
        read_attempts: int = 3,
        retry_backoff_s: float = 0.25,
        max_retry_wait_s: float = 2.0,
        slow_ratio: float = 0.5,
        stop_ratio: float = 0.9,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = psa_http.absolute_url(base_url, "Autotask base_url")
        self._username = username
        self._note_type, self._publish = _setting_int(note_type), _setting_int(publish)
        if not 1 <= page_size <= _MAX_PAGE:
            raise MisconfiguredError(f"Autotask page size must be 1..{_MAX_PAGE}")
        self._page_size = page_size
        # The secret lives only in these headers, sent only to the zone (see _call).
        self._headers = {
            "ApiIntegrationCode": integration_code,
            "UserName": username,
            "Secret": secret,
            "Accept": "application/json",
        }
        self._http = psa_http.PsaHttp(
            "Autotask", http=http, timeout_s=timeout_s, read_attempts=read_attempts,
            backoff_s=retry_backoff_s, max_retry_wait_s=max_retry_wait_s, sleep=sleep,
            egress=egress,
        )  # fmt: skip
        self._budget = RequestBudget(
            self._read_usage, slow_ratio=slow_ratio, stop_ratio=stop_ratio, sleep=sleep,
            monotonic=monotonic,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._zone: httpx.URL | None = None
        self._statuses: dict[int, str] | None = None

    def __repr__(self) -> str:
        return f"AutotaskTickets(base_url={str(self._base)!r}, username={self._username!r})"

    # --- TicketSystem -------------------------------------------------------------------

    def list_open_tickets(self, company_id: str) -> list[Ticket]:
        cid = _numeric_id(company_id, "company", MisconfiguredError)
        query = {
            "MaxRecords": self._page_size,
            "IncludeFields": _TICKET_FIELDS,
            "filter": [
                {"op": "eq", "field": "companyID", "value": cid},
                {"op": "noteq", "field": "status", "value": COMPLETE},
            ],
        }
        tickets = {str(item["id"]): self._to_ticket(item) for item in self._query("Tickets", query)}
        return sorted(tickets.values(), key=lambda t: int(t.id), reverse=True)  # newest first

    def get_ticket(self, ticket_id: str) -> Ticket:
        tid = _numeric_id(ticket_id, "ticket")
        body = _json(self._read("GET", f"Tickets/{tid}", not_found=AdapterNotFoundError))
        item = body.get("item") if isinstance(body, Mapping) else None
        if item is None:
            # Autotask answers 200 {"item": null} for an unknown id.
            raise AdapterNotFoundError(f"no Autotask ticket {tid}")
        return self._to_ticket(item)

    def find_note(self, ticket_id: str, marker: str) -> str | None:
        if not marker:
            raise ValueError("marker must not be empty")
        tid = _numeric_id(ticket_id, "ticket")
        query = {
            "MaxRecords": _MAX_PAGE,
            "IncludeFields": ["id", "ticketID", "description"],
            "filter": [
                {"op": "eq", "field": "ticketID", "value": tid},
                {"op": "contains", "field": "description", "value": marker},
            ],
        }
        for item in self._query("TicketNotes", query):
            # The server's match ignores case: confirm it exactly.
            if carries_marker(str(item.get("description") or ""), marker):
                return str(item["id"])
        return None

    def add_note(self, ticket_id: str, text: str) -> str:
        tid = _numeric_id(ticket_id, "ticket")
        first_line = text.strip().splitlines()[0] if text.strip() else "jitadmin"
        title = first_line if len(first_line) <= _TITLE_MAX else first_line[: _TITLE_MAX - 1] + "…"
        body = {
            "ticketID": tid,
            "title": title,  # some ticket categories require one
            "description": text,
            "noteType": self._note_type,
            "publish": self._publish,
        }
        response = self._call("POST", f"Tickets/{tid}/Notes", json=body)
        note = _json(response)
        if not isinstance(note, Mapping) or note.get("itemId") is None:
            # The note may well be stored: transient, so the outbox looks for its marker.
            raise TransientError("Autotask accepted the note POST but sent no itemId")
        return str(note["itemId"])

    def check(self) -> list[str]:
        zone = self._zone_url(refresh=True)
        usage = self._budget.refresh()
        fields = _json(self._read("GET", "TicketNotes/entityInformation/fields"))
        for name, value in (("noteType", self._note_type), ("publish", self._publish)):
            active = _picklist(fields, name)
            if value not in active:
                choices = ", ".join(f"{k} {v}" for k, v in sorted(active.items()))
                raise MisconfiguredError(
                    f"Autotask {name} {value} is not an active TicketNotes {name} ({choices})"
                )
        count_query = {"filter": [{"op": "noteq", "field": "status", "value": COMPLETE}]}
        counted = _json(self._read("POST", "Tickets/query/count", json=count_query))
        open_count = psa_http.count(counted, "queryCount")
        return [
            f"zone {zone}",
            f"authenticated as {self._username}",
            f"API usage: {usage.describe()}",
            f"{open_count} open tickets visible",
        ]

    # --- Autotask specifics -------------------------------------------------------------

    def _to_ticket(self, item: Any) -> Ticket:
        try:
            status = int(item["status"])
            return Ticket(
                id=str(item["id"]),
                number=str(item.get("ticketNumber") or item["id"]),
                summary=str(item.get("title") or ""),
                status=self._status_labels().get(status, f"status {status}"),
                is_closed=status == COMPLETE,
                company_id=str(item["companyID"]),
            )
        except (KeyError, TypeError, ValueError):
            raise MisconfiguredError("Autotask returned a ticket in an unexpected shape") from None

    def _status_labels(self) -> dict[int, str]:
        """The instance's status picklist (labels are per instance), read once."""
        if self._statuses is None:
            try:
                fields = _json(self._read("GET", "Tickets/entityInformation/fields"))
                self._statuses = _picklist(fields, "status", active_only=False)
            except AdapterError as error:
                log.info("Autotask status labels unavailable: %s", error)
                return {}
        return self._statuses

    def _read_usage(self) -> Usage:
        # ThresholdInformation itself is not guarded by the budget it feeds.
        response = self._call("GET", "ThresholdInformation", counted=False)
        body = _json(response)
        try:
            return Usage(
                int(body["currentTimeframeRequestCount"]),
                int(body["externalRequestThreshold"]),
                int(body.get("requestThresholdTimeframe") or 60),
            )
        except (KeyError, TypeError, ValueError):
            raise MisconfiguredError(
                "Autotask ThresholdInformation has an unexpected shape"
            ) from None

    def _query(self, entity: str, query: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Every item of a query, following ``pageDetails.nextPageUrl`` exactly."""
        target: str | httpx.URL = f"{entity}/query"
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = _json(self._read("POST", target, json=query, not_found=MisconfiguredError))
            items = page.get("items") if isinstance(page, Mapping) else None
            if not isinstance(items, list):
                raise MisconfiguredError(f"Autotask {entity} query did not return items")
            yield from (i for i in items if isinstance(i, Mapping))
            following = (page.get("pageDetails") or {}).get("nextPageUrl")
            if not following or following in seen:
                return
            seen.add(following)
            # Re-sent with the same body, as clients do; _call checks it stays on the zone.
            target = self._zone_url().join(str(following))
        raise MisconfiguredError(f"Autotask {entity} paging did not end after {_MAX_PAGES} pages")

    # --- HTTP ---------------------------------------------------------------------------

    def _zone_url(self, *, refresh: bool = False) -> httpx.URL:
        with self._lock:
            if self._zone is not None and not refresh:
                return self._zone
        url = self._base.join("V1.0/zoneInformation")
        response = self._http.retrying(
            lambda: self._http.send(
                "GET", url, allowed=psa_http.origin(self._base),
                headers={"Accept": "application/json"}, params={"user": self._username},
            ),
            "zoneInformation",
        )  # fmt: skip
        if response.status_code == 500:
            # Autotask's answer for an unknown API user.
            raise MisconfiguredError(f"Autotask has no zone for API user {self._username!r}")
        if not response.is_success:
            _raise_for("Autotask GET zoneInformation", response, MisconfiguredError)
        body = _json(response)
        raw = body.get("url") if isinstance(body, Mapping) else None
        if not isinstance(raw, str):
            raise MisconfiguredError("Autotask zoneInformation returned no url (check base_url)")
        zone = psa_http.absolute_url(raw, "Autotask zone url")
        if not _trusted_zone(self._base, zone):
            raise MisconfiguredError(f"Autotask zone {zone.host} is outside {self._base.host}")
        with self._lock:
            self._zone = zone
        return zone

    def _read(
        self, method: str, target: str | httpx.URL, *, json: Any = None,
        not_found: type[AdapterError] = AdapterNotFoundError,
    ) -> httpx.Response:  # fmt: skip
        """An idempotent call (GET, or a query POST), retried briefly on transient failures."""
        return self._http.retrying(
            lambda: self._call(method, target, json=json, not_found=not_found),
            f"{method} {target}",
        )

    def _call(
        self, method: str, target: str | httpx.URL, *, json: Any = None, counted: bool = True,
        not_found: type[AdapterError] = AdapterNotFoundError,
    ) -> httpx.Response:  # fmt: skip
        if counted:
            self._budget.before_request()
        for attempt in (1, 2):
            zone = self._zone_url()
            url = target if isinstance(target, httpx.URL) else zone.join(f"V1.0/{target}")
            response = self._http.send(
                method, url, allowed=psa_http.origin(zone), headers=self._headers, json=json
            )
            if response.status_code == 401 and attempt == 1:
                self._zone_url(refresh=True)  # the database may have moved zones
                continue
            if not response.is_success:
                _raise_for(f"Autotask {method} {url.path}", response, not_found)
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def _trusted_zone(base: httpx.URL, zone: httpx.URL) -> bool:
    """The zone may be another host, but only in the discovery host's own domain, same scheme."""
    if zone.scheme != base.scheme:
        return False
    host, zone_host = base.host.lower(), zone.host.lower()
    if zone_host == host:
        return True
    parent = host.partition(".")[2]
    is_name = any(c.isalpha() for c in host) and "." in parent
    return is_name and zone_host.endswith("." + parent)


def _raise_for(what: str, response: httpx.Response, not_found: type[AdapterError]) -> NoReturn:
    messages, listed = _vendor_errors(response)
    psa_http.raise_mapped(
        what, response, not_found, messages, auth_hint=_AUTH_HINT,
        # The hourly threshold may come as a non-429 error; wait out part of the hour.
        throttled="threshold" in messages.lower(), throttle_wait_s=60.0,
        # Autotask reports validation failures as 500 {"errors": [...]}.
        rejected=listed,
    )  # fmt: skip


def _vendor_errors(response: httpx.Response) -> tuple[str, bool]:
    """The error text, and whether it came as Autotask's ``{"errors": [...]}`` list."""
    try:
        body = response.json()
    except ValueError:
        return "", False
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if isinstance(errors, list) and errors:
        return " ".join(str(e) for e in errors)[:500], True
    return (str(body.get("Message") or "")[:500] if isinstance(body, Mapping) else ""), False


def _json(response: httpx.Response) -> Any:
    return psa_http.json_body(response, "Autotask")


def _picklist(fields: Any, name: str, *, active_only: bool = True) -> dict[int, str]:
    """``{value: label}`` of one field's picklist from an entityInformation/fields answer."""
    out: dict[int, str] = {}
    listed = fields.get("fields") if isinstance(fields, Mapping) else None
    for field in listed if isinstance(listed, list) else []:
        if not isinstance(field, Mapping) or str(field.get("name", "")).lower() != name.lower():
            continue
        for value in field.get("picklistValues") or []:
            if not isinstance(value, Mapping) or (active_only and not value.get("isActive", True)):
                continue
            try:
                out[int(value["value"])] = str(value.get("label") or value["value"])
            except (KeyError, TypeError, ValueError):
                continue
    return out


def _setting_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise MisconfiguredError("Autotask note_type and publish must be integers")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise MisconfiguredError("Autotask note_type and publish must be integers") from None


def _numeric_id(raw: str, kind: str, error: type[AdapterError] = AdapterNotFoundError) -> int:
    return psa_http.numeric_id(raw, "Autotask", kind, error)
