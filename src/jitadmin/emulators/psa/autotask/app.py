"""Autotask PSA emulator: the REST subset jitadmin uses.

Two "hosts" under one app, as in the real service: the global zone-discovery root
``/ATServicesRest`` (only ``V1.0/zoneInformation``) and the zone root ``/zone5/ATServicesRest/``
that zoneInformation hands out. Every vendor request is journaled, then delayed and failed per
the fault switches, then authenticated (three headers), then counted against the hourly
threshold.

Admin routes under ``/_admin`` (no auth, no faults): ``PUT``/``DELETE /faults``,
``GET``/``DELETE /requests``, ``POST /drop_after_commit {"count", "mode": "500"|"drop"}`` and
``PUT /threshold {"limit", "used"?, "status"?}`` (the hourly request threshold, default 10,000;
past it the API answers ``status``, default 429, with an ``errors`` body).

Emulator choices where the vendor documents nothing: an injected 5xx carries ASP.NET's
``{"Message": "An error has occurred."}`` body, while validation failures are HTTP 500 with
``{"errors": [...]}`` (as Autotask sends them); ``ThresholdInformation`` and
``zoneInformation`` do not count against the threshold.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from jitadmin.emulators.psa.autotask import query as at_query
from jitadmin.emulators.psa.autotask.query import Query, QueryError
from jitadmin.emulators.psa.autotask.state import (
    COMPANY_FIELDS,
    HOURLY_THRESHOLD,
    NOTE_FIELDS,
    TICKET_FIELDS,
    ATError,
    AutotaskState,
    entity_fields,
)
from jitadmin.emulators.psa.common import (
    CutConnection,
    add_admin_routes,
    add_vendor_gate,
    mount_prefix,
)
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

__all__ = ["GLOBAL_ROOT", "ZONE_ROOT", "AutotaskState", "create_autotask_app"]

GLOBAL_ROOT = "/ATServicesRest"
ZONE_ROOT = "/zone5/ATServicesRest"
_V1 = f"{ZONE_ROOT}/V1.0"
_ENTITY_FIELDS = {"Tickets": TICKET_FIELDS, "Companies": COMPANY_FIELDS, "TicketNotes": NOTE_FIELDS}


class ThresholdSettings(BaseModel):
    limit: int = Field(ge=1, le=1_000_000)
    used: int | None = Field(default=None, ge=0, le=1_000_000)
    status: int = Field(default=429, ge=400, le=599)


def _errors(status: int, *messages: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": list(messages)}, status_code=status, headers=dict(headers or {}))


def zone_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{mount_prefix(request)}{ZONE_ROOT}/"


def _auth_failure(request: Request, creds: SeedCredentials) -> str | None:
    headers = request.headers
    given = (headers.get("ApiIntegrationCode"), headers.get("UserName"), headers.get("Secret"))
    if not all(given):
        return "The ApiIntegrationCode, UserName and Secret headers are required."
    code, user, secret = (str(v) for v in given)
    ok = (
        user.lower() == creds.at_username.lower()
        and secrets.compare_digest(secret, creds.at_secret)
        and secrets.compare_digest(code, creds.at_integration_code)
    )
    return None if ok else "Authentication failed: check the username, secret and integration code."


def create_autotask_app(
    customers: Sequence[SeedCustomer], creds: SeedCredentials
) -> tuple[FastAPI, AutotaskState]:
    state = AutotaskState(customers, creds)
    app = FastAPI(title="Autotask PSA emulator", openapi_url=None)

    @app.exception_handler(ATError)
    async def _at_error(_: Request, exc: ATError) -> Response:
        return _errors(exc.status, *exc.messages)

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> Response:
        return _errors(500, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _errors(exc.status_code, str(exc.detail))

    def answer_fault(status: int, headers: dict[str, str]) -> Response:
        if status >= 500:
            body = {"Message": f"An error has occurred. (injected fault {status})"}
            return JSONResponse(body, status_code=status, headers=headers)
        return _errors(status, f"injected fault {status}", headers=headers)

    def admit(request: Request, path: str) -> Response | None:
        if path.endswith("/zoneInformation"):
            return None
        reason = _auth_failure(request, creds)
        if reason is not None:
            return _errors(401, reason)
        if not path.endswith("/ThresholdInformation") and not state.threshold.admit():
            limit = state.threshold.limit
            message = f"The request threshold of {limit} requests per 60 minutes was exceeded."
            return _errors(state.threshold_status, message)
        return None

    def reset_threshold() -> None:
        state.threshold.reset(HOURLY_THRESHOLD, 3600.0)
        state.threshold_status = 429

    add_vendor_gate(app, state.faults, answer_fault, admit)
    add_admin_routes(app, state.faults, state.drops, reset_threshold)
    _add_threshold_route(app, state)
    _add_vendor_routes(app, state)
    return app, state


def _add_threshold_route(app: FastAPI, state: AutotaskState) -> None:
    @app.put("/_admin/threshold")
    def put_threshold(body: ThresholdSettings) -> dict[str, Any]:
        state.threshold.configure(body.limit, used=body.used)
        state.threshold_status = body.status
        return {"limit": body.limit, "used": state.threshold.count(), "status": body.status}


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise ATError(500, "The request body is not valid JSON.") from None


def _entity(name: str) -> tuple[str, ...]:
    if name not in _ENTITY_FIELDS:
        raise ATError(404, f"No entity named '{name}'.")
    return _ENTITY_FIELDS[name]


def _records(state: AutotaskState, entity: str) -> list[dict[str, Any]]:
    if entity == "Tickets":
        return state.tickets()
    if entity == "Companies":
        return state.companies()
    return state.all_notes()


def _page(
    request: Request, state: AutotaskState, entity: str, query: Query, offset: int = 0
) -> dict[str, Any]:
    found = at_query.select(_records(state, entity), query, _entity(entity))
    include = {f.lower() for f in query.include_fields or ()}
    if len(found) > at_query.MAX_PAGE and include and "id" not in include:
        raise QueryError("IncludeFields must contain 'id' when more than 500 records match.")
    chunk = found[offset : offset + query.max_records]
    base = f"{zone_url(request)}V1.0/{entity}/query/next?paging="

    def link(start: int) -> str:
        return base + at_query.encode_token(entity, query, start)

    following = offset + query.max_records
    return {
        "items": [at_query.project(r, query.include_fields) for r in chunk],
        "pageDetails": {
            "count": len(chunk),
            "requestCount": query.max_records,
            "prevPageUrl": link(max(0, offset - query.max_records)) if offset > 0 else None,
            "nextPageUrl": link(following) if following < len(found) else None,
        },
    }


def _add_vendor_routes(app: FastAPI, state: AutotaskState) -> None:
    creds = state.creds

    @app.get(f"{GLOBAL_ROOT}/V1.0/zoneInformation")
    @app.get(f"{_V1}/zoneInformation")
    def zone_information(request: Request, user: str = "") -> Response:
        if user.lower() != creds.at_username.lower():
            # django-autotask reads a 500 here as "bad or unknown username".
            return _errors(500, "Zone information could not be determined for this user.")
        return JSONResponse({
            "zoneName": "America East 5", "url": zone_url(request),
            "webUrl": "https://ww5.autotask.net/", "ci": 296999,
        })  # fmt: skip

    @app.get(f"{_V1}/ThresholdInformation")
    def threshold_information() -> dict[str, int]:
        return {
            "externalRequestThreshold": state.threshold.limit,
            "requestThresholdTimeframe": int(state.threshold.window_s // 60),
            "currentTimeframeRequestCount": state.threshold.count(),
        }

    @app.get(f"{_V1}/{{entity}}/entityInformation/fields")
    def fields(entity: str) -> dict[str, Any]:
        _entity(entity)
        return {"fields": entity_fields(entity)}

    @app.post(f"{_V1}/{{entity}}/query")
    async def query_post(entity: str, request: Request) -> dict[str, Any]:
        _entity(entity)
        return _page(request, state, entity, at_query.parse_query(await _json_body(request)))

    @app.get(f"{_V1}/{{entity}}/query")
    def query_get(entity: str, request: Request, search: str = "") -> dict[str, Any]:
        _entity(entity)
        try:
            body = json.loads(search)
        except ValueError:
            raise QueryError("The search parameter must be a JSON query.") from None
        return _page(request, state, entity, at_query.parse_query(body))

    @app.post(f"{_V1}/{{entity}}/query/count")
    async def query_count(entity: str, request: Request) -> dict[str, int]:
        fields_ = _entity(entity)
        query = at_query.parse_query(await _json_body(request))
        return {"queryCount": len(at_query.select(_records(state, entity), query, fields_))}

    @app.api_route(f"{_V1}/{{entity}}/query/next", methods=["GET", "POST"])
    def query_next(entity: str, request: Request, paging: str = "") -> dict[str, Any]:
        # The token carries the whole query; a re-sent POST body is ignored.
        token_entity, query, offset = at_query.decode_token(paging)
        if token_entity != entity:
            raise QueryError("The paging token belongs to another entity.")
        return _page(request, state, entity, query, offset)

    @app.get(f"{_V1}/Tickets/{{ticket_id:int}}")
    def get_ticket(ticket_id: int) -> dict[str, Any]:
        # A missing id is 200 with a null item, not 404, as in Autotask.
        return {"item": state.ticket(ticket_id)}

    @app.patch(f"{_V1}/Tickets")
    async def update_ticket(request: Request) -> Response:
        # Autotask updates an entity with PATCH on the collection, its id in the body;
        # only the status is updatable here, which is what closing needs.
        body = await _json_body(request)
        if not isinstance(body, dict) or type(body.get("id")) is not int:
            return _errors(500, "The id field is required and must be an integer.")
        status = body.get("status")
        if type(status) is not int or status not in state.statuses():
            return _errors(500, f"Value {status!r} is not a valid status of Tickets.")
        if state.ticket(body["id"]) is None:
            return _errors(500, f"Unable to find Tickets with id {body['id']}.")
        state.set_status(body["id"], status)
        return JSONResponse({"itemId": body["id"]})

    @app.get(f"{_V1}/Companies/{{company_id:int}}")
    def get_company(company_id: int) -> dict[str, Any]:
        found = [c for c in state.companies() if c["id"] == company_id]
        return {"item": found[0] if found else None}

    @app.get(f"{_V1}/Tickets/{{ticket_id:int}}/Notes")
    def list_notes(ticket_id: int, request: Request) -> dict[str, Any]:
        query = Query([{"op": "eq", "field": "ticketID", "value": ticket_id}], 500, None)
        return _page(request, state, "TicketNotes", query)

    @app.post(f"{_V1}/Tickets/{{ticket_id:int}}/Notes")
    async def add_note(ticket_id: int, request: Request) -> Response:
        note, drop = state.add_note(ticket_id, await _json_body(request))
        if drop == "drop":
            return CutConnection()
        if drop == "500":
            # Committed, but the client never learns it (the outbox's unknown-outcome path).
            return JSONResponse({"Message": "An error has occurred."}, status_code=500)
        return JSONResponse({"itemId": note["id"]})
