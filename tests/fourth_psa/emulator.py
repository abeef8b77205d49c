"""The Deskline emulator: its API (see the package docstring) on the shared emulator pieces.

Every vendor request is journaled, then delayed and failed per the fault switches
(``add_vendor_gate``), then rate limited (429 with ``Retry-After``) and authenticated (Bearer
API key). ``/_admin`` offers the switches every PSA emulator has (``add_admin_routes``).
``EMULATOR`` is what the connector registry mounts under ``/deskline``.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fourth_psa.state import RATE_LIMIT, RATE_WINDOW_S, DesklineError, DesklineState
from jitadmin.emulators.psa.common import (
    CutConnection,
    JournalPaths,
    PsaEmulator,
    add_admin_routes,
    add_vendor_gate,
)
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

__all__ = ["EMULATOR", "api_key", "create_deskline_app"]

_DEFAULT_PAGE_SIZE, _MAX_PAGE_SIZE = 50, 100
_FAULT_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limited",
                503: "unavailable"}  # fmt: skip


@functools.cache
def api_key(creds: SeedCredentials) -> str:
    """The emulated account's API key: random, one per set of seed credentials.

    ``SeedCredentials`` has a field per built-in vendor and none for a PSA added from outside,
    so the key is kept here, by the (frozen, hashable) credentials it belongs with.
    """
    return secrets.token_urlsafe(24)


def _error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _number(raw: str, what: str) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise DesklineError(404, f"{what}_not_found", f"no {what} {raw!r}")
    return int(raw)


def _page(request: Request, records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """One page of ``records`` and the absolute URL of the next one (None on the last)."""
    params = request.query_params
    try:
        page = int(params.get("page") or 1)
        size = min(int(params.get("per_page") or _DEFAULT_PAGE_SIZE), _MAX_PAGE_SIZE)
    except ValueError:
        raise DesklineError(400, "invalid_paging", "page and per_page are integers") from None
    if page < 1 or size < 1:
        raise DesklineError(400, "invalid_paging", "page and per_page start at 1")
    chunk = records[(page - 1) * size : page * size]
    more = page * size < len(records)
    # request.url keeps the mount prefix and the caller's host, so the link works when mounted.
    following = str(request.url.include_query_params(page=page + 1, per_page=size))
    return {key: chunk, "page": page, "next": following if more else None}


def create_deskline_app(
    customers: Sequence[SeedCustomer], creds: SeedCredentials
) -> tuple[FastAPI, DesklineState]:
    state = DesklineState(customers, creds)
    app = FastAPI(title="Deskline emulator", openapi_url=None)
    key = api_key(creds)

    @app.exception_handler(DesklineError)
    async def _deskline_error(_: Request, exc: DesklineError) -> Response:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "invalid",
                      str(exc.detail))  # fmt: skip

    def answer_fault(status: int, headers: dict[str, str]) -> Response:
        return _error(status, _FAULT_CODES.get(status, "server_error"), f"injected fault {status}",
                      headers)  # fmt: skip

    def admit(request: Request, path: str) -> Response | None:
        if not state.rate.admit():
            wait = {"Retry-After": str(int(state.rate.window_s))}
            return _error(429, "rate_limited", f"more than {state.rate.limit} requests", wait)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), key):
            return _error(401, "unauthorized", "the API key is not valid")
        return None

    add_vendor_gate(app, state.faults, answer_fault, admit)
    add_admin_routes(
        app, state.faults, state.drops, lambda: state.rate.reset(RATE_LIMIT, RATE_WINDOW_S)
    )
    _add_api_routes(app, state)
    return app, state


def _add_api_routes(app: FastAPI, state: DesklineState) -> None:
    @app.get("/api/v1/account")
    def account() -> dict[str, Any]:
        open_count = sum(t["state"] == "open" for t in state.tickets())
        return {"name": "MSP Demo", "open_tickets": open_count}

    @app.get("/api/v1/companies/{company_id}/tickets")
    def list_tickets(company_id: str, request: Request) -> dict[str, Any]:
        if request.query_params.get("status") != "open":
            raise DesklineError(400, "invalid_filter", "status=open is the only listing")
        tickets = state.open_tickets(_number(company_id, "company"))
        return _page(request, tickets, "tickets")

    @app.get("/api/v1/tickets/{ticket_id}")
    def get_ticket(ticket_id: str) -> dict[str, Any]:
        return state.existing_ticket(_number(ticket_id, "ticket"))

    @app.get("/api/v1/tickets/{ticket_id}/notes")
    def list_notes(ticket_id: str, request: Request) -> dict[str, Any]:
        return _page(request, state.notes(_number(ticket_id, "ticket")), "notes")

    @app.post("/api/v1/tickets/{ticket_id}/notes")
    async def add_note(ticket_id: str, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise DesklineError(400, "invalid_json", "the body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise DesklineError(422, "invalid_note", "text is required")
        internal = body.get("internal", False)  # Deskline's notes are public unless told
        if not isinstance(internal, bool):
            raise DesklineError(422, "invalid_note", "internal must be true or false")
        note, drop = state.add_note(_number(ticket_id, "ticket"), body["text"], internal=internal)
        if drop == "drop":
            return CutConnection()
        if drop == "500":
            # Committed, but the client never learns it (the outbox's unknown-outcome path).
            return _error(500, "server_error", "the request was aborted")
        return JSONResponse(note, status_code=201)


def settings(root: str, creds: SeedCredentials) -> dict[str, Any]:
    """Exactly the body PUT /psa takes for this emulator, plus its admin_url."""
    return {
        "kind": "deskline",
        "base_url": root,
        "admin_url": f"{root}/_admin",
        "api_key": api_key(creds),
    }


EMULATOR = PsaEmulator(
    kind="deskline",
    create=create_deskline_app,
    settings=settings,
    # "/tickets" is in both the listing's and the single ticket's path (faults match either).
    paths=JournalPaths("/tickets", "/notes", ("GET", "/tickets")),
)
