"""ConnectWise PSA (Manage) emulator: the REST subset jitadmin uses.

Vendor routes: ``GET /login/companyinfo/{company}`` and, under ``/v4_6_release/apis/3.0``,
companies, tickets (list, search, count, by id, close with a JSON Patch) and ticket notes (list,
create). Every vendor request is journaled, then delayed and failed per the fault switches, then
authenticated.

Admin routes under ``/_admin`` (no auth, no faults; ``psa.common.add_admin_routes``):
``PUT``/``DELETE /faults``, ``GET``/``DELETE /requests`` and ``POST /drop_after_commit
{"count": n}``: the next n note POSTs store the note and then answer 500, as if the connection
dropped after the commit.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jitadmin.emulators.psa.common import DropMode, PsaWorld, add_admin_routes, add_vendor_gate
from jitadmin.emulators.psa.connectwise.conditions import (
    QueryError,
    flatten_paths,
    paginate,
    project,
    select,
)
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

__all__ = ["API_ROOT", "CODEBASE", "ConnectWiseState", "create_connectwise_app"]

CODEBASE = "v4_6_release/"
API_ROOT = f"/{CODEBASE}apis/3.0"
DISPLAY_FLAGS = ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag")
_STATUS_IDS = {"New": 1, "In Progress": 16, "Waiting on Client": 20, "Closed": 30}
_BOARD = {"id": 1, "name": "Help Desk"}
_MEMBER = {"id": 178, "identifier": "jitapi", "name": "JIT API"}
_FIRST_NOTE_ID = 993300
_FAULT_CODES = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CWError(Exception):
    """Raised by handlers; rendered as the ConnectWise error envelope
    ``{"code", "message", "errors": [...]}``."""

    def __init__(
        self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors or []

    def response(self, headers: Mapping[str, str] | None = None) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "errors": self.errors}
        return JSONResponse(body, status_code=self.status, headers=dict(headers or {}))


def _company_record(company_id: int, identifier: str, name: str) -> dict[str, Any]:
    return {
        "id": company_id,
        "identifier": identifier,
        "name": name,
        "status": {"id": 1, "name": "Active"},
        "deletedFlag": False,
        "_info": {"lastUpdated": _now()},
    }


def _ticket_record(
    ticket_id: int, summary: str, status: str, closed: bool, company: Mapping[str, Any]
) -> dict[str, Any]:
    entered = _now()
    return {
        "id": ticket_id,
        "summary": summary,
        "recordType": "ServiceTicket",
        "board": dict(_BOARD),
        "status": {"id": _STATUS_IDS.get(status, 99), "name": status},
        "company": {k: company[k] for k in ("id", "identifier", "name")},
        "closedFlag": closed,
        "_info": {"dateEntered": entered, "lastUpdated": entered},
    }


def _note_record(note_id: int, ticket_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
    flags = {name: bool(body.get(name, False)) for name in DISPLAY_FLAGS}
    created = _now()
    return {
        "id": note_id,
        "ticketId": ticket_id,
        "text": body.get("text", ""),
        **flags,
        "issueFlag": bool(body.get("issueFlag", False)),
        "processNotifications": bool(body.get("processNotifications", False)),
        "member": dict(_MEMBER),
        "dateCreated": created,
        "createdBy": _MEMBER["identifier"],
        "internalFlag": flags["internalAnalysisFlag"],
        "externalFlag": flags["detailDescriptionFlag"] or flags["resolutionFlag"],
        "_info": {"lastUpdated": created, "updatedBy": _MEMBER["identifier"]},
    }


# The fields a query may name, taken from template records of each kind.
COMPANY_PATHS = flatten_paths(_company_record(0, "", ""))
TICKET_PATHS = flatten_paths(_ticket_record(0, "", "New", False, _company_record(0, "", "")))
NOTE_PATHS = flatten_paths(_note_record(0, 0, {}))


class ConnectWiseState(PsaWorld):
    """The emulator's world: companies, tickets and their notes."""

    def __init__(self, customers: Sequence[SeedCustomer], creds: SeedCredentials) -> None:
        super().__init__(creds)
        self._notes: dict[int, list[dict[str, Any]]] = {}
        self._next_note_id = _FIRST_NOTE_ID
        for customer in customers:
            company = _company_record(
                customer.psa_company_id, customer.psa_identifier, customer.name
            )
            self._companies[customer.psa_company_id] = company
            for t in customer.tickets:
                self._tickets[t.id] = _ticket_record(t.id, t.summary, t.status, t.closed, company)

    def add_ticket(
        self, company_id: int, summary: str, *, status: str | None = None, closed: bool = False
    ) -> int:
        """Add a ticket (e.g. to force paging); returns its id."""
        status = status or ("Closed" if closed else "New")
        with self._lock:
            company = self._companies[company_id]
            ticket_id = self._new_ticket_id()
            self._tickets[ticket_id] = _ticket_record(ticket_id, summary, status, closed, company)
            return ticket_id

    def notes(self, ticket_id: int | str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._notes.get(int(ticket_id), []))

    # -- ground truth for tests (emulators.psa.common.TicketGroundTruth) -------------------

    def close_ticket(self, ticket_id: int) -> None:
        with self._lock:
            ticket = self._tickets[ticket_id]
            ticket["closedFlag"] = True
            ticket["status"] = {"id": _STATUS_IDS["Closed"], "name": "Closed"}

    def seed_note(self, ticket_id: int, text: str) -> None:
        self.add_note(ticket_id, {"text": text, "internalAnalysisFlag": True})

    def stored_notes(self, ticket_id: str) -> list[tuple[str, str]]:
        return [(str(n["id"]), n["text"]) for n in self.notes(ticket_id)]

    def add_note(
        self, ticket_id: int, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], DropMode | None]:
        """Store a note; returns it and whether this response must be dropped (if armed)."""
        with self._lock:
            note = _note_record(self._next_note_id, ticket_id, body)
            self._next_note_id += 1
            self._notes.setdefault(ticket_id, []).append(note)
            return copy.deepcopy(note), self.drops.take()


def _auth_failure(request: Request, creds: SeedCredentials) -> str | None:
    """Why the request is not authenticated, or None when it is."""
    if not request.headers.get("clientId"):
        return "clientId header is required"
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "Basic authentication is required"
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "malformed Authorization header"
    user, _, private = decoded.partition(":")
    company, _, public = user.partition("+")
    ok = (
        company.lower() == creds.cw_company_id.lower()
        and secrets.compare_digest(public, creds.cw_public_key)
        and secrets.compare_digest(private, creds.cw_private_key)
        and secrets.compare_digest(request.headers["clientId"], creds.cw_client_id)
    )
    return None if ok else "UserNotAuthenticated"


def _paged(request: Request, records: Sequence[Mapping[str, Any]], fields: str | None) -> Response:
    """A bare JSON array of one page plus the ``Link`` header (no ``rel="next"`` on the last)."""

    # request.url keeps the mount prefix and the caller's host, so links work when mounted.
    def url_for(page: int, size: int) -> str:
        return str(request.url.include_query_params(page=page, pageSize=size))

    params = request.query_params
    page = paginate(records, params.get("page"), params.get("pageSize"), url_for)
    headers = {"Link": page.link} if page.link else {}
    return JSONResponse([project(r, fields) for r in page.items], headers=headers)


def create_connectwise_app(
    customers: Sequence[SeedCustomer], creds: SeedCredentials
) -> tuple[FastAPI, ConnectWiseState]:
    state = ConnectWiseState(customers, creds)
    app = FastAPI(title="ConnectWise PSA emulator", openapi_url=None)

    @app.exception_handler(CWError)
    async def _cw_error(_: Request, exc: CWError) -> Response:
        return exc.response()

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> Response:
        return CWError(400, "InvalidRequest", str(exc)).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = "NotFound" if exc.status_code == 404 else "InvalidRequest"
        return CWError(exc.status_code, code, str(exc.detail)).response()

    def answer_fault(status: int, headers: dict[str, str]) -> Response:
        code = "ServiceUnavailable" if status == 503 else _FAULT_CODES.get(status)
        message = f"injected fault {status}"
        return CWError(status, code or "ConnectWiseApi", message).response(headers)

    def admit(request: Request, path: str) -> Response | None:
        if path.startswith("/login/"):
            return None  # companyinfo is asked before any credentials are known
        reason = _auth_failure(request, creds)
        return None if reason is None else CWError(401, "Unauthorized", reason).response()

    add_vendor_gate(app, state.faults, answer_fault, admit)
    add_admin_routes(app, state.faults, state.drops, drop_modes=False)
    _add_vendor_routes(app, state)
    return app, state


def _validate_note(body: Any) -> dict[str, Any]:
    def invalid(field: str, message: str) -> CWError:
        error = {"code": "MissingRequiredField", "message": message}
        error |= {"resource": "serviceNote", "field": field}
        return CWError(400, "InvalidObject", "serviceNote object is invalid", [error])

    if not isinstance(body, dict):
        raise invalid("text", "The request body must be a serviceNote object.")
    if not isinstance(body.get("text"), str) or not body["text"].strip():
        raise invalid("text", "text is required.")
    if not any(body.get(name) is True for name in DISPLAY_FLAGS):
        message = "Please choose where to display the notes in order to save this record."
        raise invalid("detailDescriptionFlag", message)
    return body


async def _json_body(request: Request, default: bytes = b"") -> Any:
    try:
        return json.loads(await request.body() or default)
    except ValueError:
        raise CWError(400, "InvalidObject", "request body is not valid JSON") from None


def _listing(
    request: Request, records: list[dict[str, Any]], paths: set[str], query: Mapping[str, Any]
) -> Response:
    """Filter, sort and page ``records`` per ``query`` (the query string or a search body)."""
    found = select(records, paths, query.get("conditions"), query.get("orderBy"))
    return _paged(request, found, query.get("fields") or request.query_params.get("fields"))


def _add_vendor_routes(app: FastAPI, state: ConnectWiseState) -> None:
    creds = state.creds

    @app.get("/login/companyinfo/{company}")
    def company_info(company: str) -> dict[str, Any]:
        if company.lower() != creds.cw_company_id.lower():
            raise CWError(404, "NotFound", f"company {company!r} not found")
        names = {"CompanyName": creds.cw_company_id, "CompanyID": creds.cw_company_id}
        return names | {"Codebase": CODEBASE, "VersionCode": "v2025.1", "IsCloud": False}

    @app.get(f"{API_ROOT}/company/companies")
    def list_companies(request: Request) -> Response:
        return _listing(request, state.companies(), COMPANY_PATHS, request.query_params)

    @app.get(f"{API_ROOT}/company/companies/{{company_id}}")
    def get_company(company_id: str, request: Request) -> dict[str, Any]:
        for company in state.companies():
            if str(company["id"]) == company_id:
                return project(company, request.query_params.get("fields"))
        raise CWError(404, "NotFound", f"Company with id {company_id} was not found.")

    @app.get(f"{API_ROOT}/service/tickets")
    def list_tickets(request: Request) -> Response:
        return _listing(request, state.tickets(), TICKET_PATHS, request.query_params)

    @app.post(f"{API_ROOT}/service/tickets/search")
    async def search_tickets(request: Request) -> Response:
        body = await _json_body(request, b"{}")
        if not isinstance(body, dict):
            raise CWError(400, "InvalidRequest", "request body must be an object")
        # Paging stays in the query string, as on the real search endpoint.
        return _listing(request, state.tickets(), TICKET_PATHS, body)

    @app.get(f"{API_ROOT}/service/tickets/count")
    def count_tickets(request: Request) -> dict[str, int]:
        found = select(state.tickets(), TICKET_PATHS, request.query_params.get("conditions"), None)
        return {"count": len(found)}

    @app.get(f"{API_ROOT}/service/tickets/{{ticket_id}}")
    def get_ticket(ticket_id: str, request: Request) -> dict[str, Any]:
        return project(_existing_ticket(state, ticket_id), request.query_params.get("fields"))

    @app.patch(f"{API_ROOT}/service/tickets/{{ticket_id}}")
    async def patch_ticket(ticket_id: str, request: Request) -> dict[str, Any]:
        ticket = _existing_ticket(state, ticket_id)
        changed = state.update_ticket(ticket["id"], _ticket_patch(await _json_body(request)))
        assert changed is not None
        return changed

    @app.get(f"{API_ROOT}/service/tickets/{{ticket_id}}/notes")
    def list_notes(ticket_id: str, request: Request) -> Response:
        ticket = _existing_ticket(state, ticket_id)
        return _listing(request, state.notes(ticket["id"]), NOTE_PATHS, request.query_params)

    @app.post(f"{API_ROOT}/service/tickets/{{ticket_id}}/notes")
    async def add_note(ticket_id: str, request: Request) -> Response:
        ticket = _existing_ticket(state, ticket_id)
        body = await _json_body(request)
        note, drop = state.add_note(ticket["id"], _validate_note(body))
        if drop is not None:
            # The note is committed; the client never learns it (outcome-unknown path).
            return CWError(500, "ConnectWiseApi", "the request was aborted").response()
        return JSONResponse(note, status_code=201)


def _ticket_patch(body: Any) -> dict[str, Any]:
    """A JSON Patch (RFC 6902) list of ``replace`` ops on ``status`` or ``closedFlag``, as the
    changes it makes; a status named or numbered "Closed" closes the ticket."""
    if not isinstance(body, list) or not body:
        raise CWError(400, "InvalidObject", "the body must be a JSON Patch list of operations")
    changes: dict[str, Any] = {}
    for op in body:
        if not isinstance(op, dict) or op.get("op") != "replace" or "value" not in op:
            raise CWError(400, "InvalidObject", "only replace operations with a value are allowed")
        path, value = str(op.get("path", "")).strip("/"), op["value"]
        if path == "closedFlag" and isinstance(value, bool):
            changes["closedFlag"] = value
            continue
        if path == "status" and isinstance(value, dict):
            value = value.get("name", value.get("id"))
        elif path not in ("status/name", "status/id"):
            raise CWError(400, "InvalidObject", f"cannot patch {path!r} on a ticket")
        names = {number: name for name, number in _STATUS_IDS.items()}
        name = names.get(value, value) if isinstance(value, int) else value
        if name not in _STATUS_IDS:
            raise CWError(400, "InvalidObject", f"unknown status {value!r}")
        changes["status"] = {"id": _STATUS_IDS[name], "name": name}
        changes["closedFlag"] = name == "Closed"
    return changes


def _existing_ticket(state: ConnectWiseState, raw_id: str) -> dict[str, Any]:
    if not raw_id.isdigit():
        raise CWError(400, "InvalidRequest", f"invalid ticket id {raw_id!r}")
    ticket = state.ticket(int(raw_id))
    if ticket is None:
        raise CWError(404, "NotFound", f"Ticket with id {raw_id} was not found.")
    return ticket
