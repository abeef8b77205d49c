"""HaloPSA emulator: the API subset jitadmin uses.

The resource server lives under ``/api`` and the authorisation server under ``/auth``; paths
match case-insensitively, as Halo's do. Every vendor request is journaled, then delayed and
failed per the fault switches; ``/api`` requests then pass the rolling rate limit (300 per
5 minutes: 429 "Rate Limit Reached - ...") and need a Bearer token from ``POST /auth/token``
(client credentials, ``?tenant=`` required, as on hosted Halo).

Admin routes under ``/_admin`` (no auth, no faults): ``PUT``/``DELETE /faults``,
``GET``/``DELETE /requests``, ``POST /drop_after_commit {"count", "mode": "500"|"drop"}``,
``PUT /rate_limit {"limit", "window_s"?, "used"?}`` and ``POST /expire_tokens``.

Emulator choices where the vendor documents nothing: ``GET /api/outcome`` and ``/api/status``
answer bare arrays; ``POST /api/Actions`` accepts only an array and answers 201 with an array;
an unknown outcome is a 400 like a missing one; a 429 carries no ``Retry-After``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from jitadmin.emulators.psa.common import (
    CutConnection,
    add_admin_routes,
    add_vendor_gate,
    journal_body,
    mount_prefix,
    route_path,
)
from jitadmin.emulators.psa.halopsa.state import CLOSED, OUTCOMES, STATUSES, HaloError, HaloState
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

__all__ = ["HaloState", "create_halopsa_app"]

_ORIGINAL_PATH = "jitadmin.original_path"


class RateLimitSettings(BaseModel):
    limit: int = Field(ge=1, le=1_000_000)
    window_s: float | None = Field(default=None, gt=0, le=86_400)
    used: int | None = Field(default=None, ge=0, le=1_000_000)


class _CaseInsensitivePaths:
    """Lower-cases the path below the mount point before routing; keeps the original."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            below = route_path(scope)
            root = scope["path"][: len(scope["path"]) - len(below)]
            scope = dict(scope)
            scope[_ORIGINAL_PATH] = below
            scope["path"] = root + below.lower()
        await self.app(scope, receive, send)


def _error(
    status: int, message: str, class_name: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"ClassName": class_name, "Message": message}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _rate_text(state: HaloState) -> str:
    minutes = max(1, round(state.rate.window_s / 60))
    return f"Rate Limit Reached - {state.rate.limit} Requests per rolling {minutes} minute window"


def _bearer_ok(request: Request, state: HaloState) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token) and state.token_valid(token.strip())


def create_halopsa_app(
    customers: Sequence[SeedCustomer], creds: SeedCredentials
) -> tuple[ASGIApp, HaloState]:
    state = HaloState(customers, creds)
    app = FastAPI(title="HaloPSA emulator", openapi_url=None)

    @app.exception_handler(HaloError)
    async def _halo_error(_: Request, exc: HaloError) -> Response:
        return _error(exc.status, exc.message, exc.class_name)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), "System.Web.Http.HttpException")

    def answer_fault(status: int, headers: dict[str, str]) -> Response:
        if status == 429:
            return PlainTextResponse(_rate_text(state), status_code=429, headers=headers)
        return _error(status, f"injected fault {status}", "System.Exception", headers)

    def admit(request: Request, path: str) -> Response | None:
        if not path.startswith("/api/"):
            return None
        if not state.rate.admit():
            return PlainTextResponse(_rate_text(state), status_code=429)
        if path != "/api/authinfo" and not _bearer_ok(request, state):
            return _error(
                401, "Authorization has been denied for this request.",
                "System.UnauthorizedAccessException",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )  # fmt: skip
        return None

    def journal(request: Request, path: str, raw: bytes) -> tuple[str, Any]:
        # The journal shows the path as sent; routing sees it lower-cased.
        shown = str(request.scope.get(_ORIGINAL_PATH, path))
        return shown, None if path == "/auth/token" else journal_body(raw)  # never the secret

    add_vendor_gate(app, state.faults, answer_fault, admit, journal)
    add_admin_routes(app, state.faults, state.drops, lambda: state.rate.reset(300, 300.0))
    _add_halo_admin_routes(app, state)
    _add_auth_routes(app, state, creds)
    _add_api_routes(app, state)
    _add_ticket_update_route(app, state)
    return _CaseInsensitivePaths(app), state


def _add_halo_admin_routes(app: FastAPI, state: HaloState) -> None:
    @app.put("/_admin/rate_limit")
    def put_rate_limit(body: RateLimitSettings) -> dict[str, Any]:
        state.rate.configure(body.limit, body.window_s, body.used)
        return {"limit": state.rate.limit, "window_s": state.rate.window_s}

    @app.post("/_admin/expire_tokens")
    def expire_tokens() -> dict[str, int]:
        return {"expired": state.expire_tokens()}


def _add_auth_routes(app: FastAPI, state: HaloState, creds: SeedCredentials) -> None:
    def oauth_error(status: int, code: str, description: str) -> JSONResponse:
        return JSONResponse({"error": code, "error_description": description}, status_code=status)

    @app.post("/auth/token")
    async def token(request: Request, tenant: str = "") -> Response:
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return oauth_error(400, "invalid_request", "the body must be form-encoded")
        form = await request.form()
        if tenant.lower() != creds.halo_tenant.lower():
            return oauth_error(400, "invalid_request", "unknown or missing tenant")
        if form.get("grant_type") != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "use client_credentials")
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if client_id != creds.halo_client_id or not secrets.compare_digest(
            secret, creds.halo_client_secret
        ):
            return oauth_error(401, "invalid_client", "client authentication failed")
        body = {
            "access_token": state.issue_token(),
            "token_type": "Bearer",
            "expires_in": state.token_ttl_s,
            "scope": str(form.get("scope") or "all"),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _flag(raw: str | None) -> bool:
    return str(raw).lower() == "true"


def _paged(records: list[dict[str, Any]], params: Mapping[str, str], key: str) -> dict[str, Any]:
    """Halo's listing envelope: paged with ``pageinate=true``, else capped by ``count``."""
    try:
        size = int(params.get("page_size", "50"))
        number = int(params.get("page_no", "1"))
        count = int(params["count"]) if "count" in params else None
    except ValueError:
        raise HaloError(400, "page_size, page_no and count must be integers") from None
    if _flag(params.get("pageinate")):
        if size < 1 or number < 1:
            raise HaloError(400, "page_size and page_no must be positive")
        chunk = records[(number - 1) * size : number * size]
        return {"page_no": number, "page_size": size, "record_count": len(records), key: chunk}
    chunk = records[:count] if count is not None else records
    return {"record_count": len(records), key: chunk}


def _ordered(records: list[dict[str, Any]], params: Mapping[str, str]) -> list[dict[str, Any]]:
    field = params.get("order") or "id"
    if records and field not in records[0]:
        raise HaloError(400, f"cannot order by {field!r}")
    return sorted(
        records, key=lambda r: (r[field] is None, r[field]), reverse=_flag(params.get("orderdesc"))
    )


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise HaloError(400, f"{name} must be an integer")
    return int(raw)


def _add_api_routes(app: FastAPI, state: HaloState) -> None:
    @app.get("/api/authinfo")
    def authinfo(request: Request) -> dict[str, Any]:
        root = f"{request.url.scheme}://{request.url.netloc}{mount_prefix(request)}"
        return {"auth_url": f"{root}/auth", "tenant_id": state.creds.halo_tenant}

    @app.get("/api/client")
    def list_clients(request: Request) -> dict[str, Any]:
        params = request.query_params
        search = (params.get("search") or "").lower()
        found = [c for c in state.clients() if search in c["name"].lower()]
        return _paged(_ordered(found, params), params, "clients")

    @app.get("/api/client/{client_id:int}")
    def get_client(client_id: int) -> dict[str, Any]:
        for client in state.clients():
            if client["id"] == client_id:
                return client
        raise HaloError(404, f"Client {client_id} not found", "Halo.Exceptions.NotFoundException")

    @app.get("/api/status")
    def statuses() -> list[dict[str, Any]]:
        return [{"id": k, "name": v, "type": 1 if k == CLOSED else 0} for k, v in STATUSES.items()]

    @app.get("/api/outcome")
    def outcomes() -> list[dict[str, Any]]:
        return [
            {"id": k, "outcome": v, "buttonname": v, "hiddenfromuser": k == 7}
            for k, v in OUTCOMES.items()
        ]

    @app.get("/api/tickets")
    def list_tickets(request: Request) -> dict[str, Any]:
        params = request.query_params
        client_id = _int_param(params, "client_id")
        found = [t for t in state.tickets() if client_id is None or t["client_id"] == client_id]
        if _flag(params.get("open_only")):
            found = [t for t in found if t["status_id"] != CLOSED]
        if _flag(params.get("closed_only")):
            found = [t for t in found if t["status_id"] == CLOSED]
        return _paged(_ordered(found, params), params, "tickets")

    @app.get("/api/tickets/{ticket_id:int}")
    def get_ticket(ticket_id: int) -> dict[str, Any]:
        ticket = state.ticket(ticket_id)
        if ticket is None:
            raise HaloError(
                404, f"Ticket {ticket_id} not found", "Halo.Exceptions.NotFoundException"
            )
        return ticket

    @app.get("/api/actions")
    def list_actions(request: Request) -> dict[str, Any]:
        params = request.query_params
        actions = state.actions(_int_param(params, "ticket_id"))
        return _paged(_ordered(actions, params), params, "actions")

    @app.get("/api/actions/{action_id:int}")
    def get_action(action_id: int, ticket_id: int | None = None) -> dict[str, Any]:
        for action in state.actions(ticket_id):
            if action["id"] == action_id:
                return action
        raise HaloError(404, f"Action {action_id} not found", "Halo.Exceptions.NotFoundException")

    @app.post("/api/actions")
    async def add_actions(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise HaloError(400, "The request body is not valid JSON.") from None
        created, drop = state.add_actions(body)
        if drop == "drop":
            return CutConnection()
        if drop == "500":
            # Committed, but the client never learns it (the outbox's unknown-outcome path).
            return _error(500, "An error has occurred.", "System.Exception")
        return JSONResponse(created, status_code=201)


def _add_ticket_update_route(app: FastAPI, state: HaloState) -> None:
    @app.post("/api/tickets")  # paths arrive lower-cased (see above)
    async def update_tickets(request: Request) -> Response:
        # Halo updates tickets by POSTing an array of objects carrying their id;
        # only status_id is updatable here. Checked whole before any change.
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise HaloError(400, "The request body is not valid JSON.") from None
        if not isinstance(body, list) or not body:
            raise HaloError(400, "The request body must be an array of tickets.")
        for item in body:
            if not isinstance(item, dict) or type(item.get("id")) is not int:
                raise HaloError(400, "Each ticket needs an integer id.")
            if item.get("status_id") not in STATUSES:
                raise HaloError(400, f"status_id {item.get('status_id')!r} is not a status.")
            if state.ticket(item["id"]) is None:
                raise HaloError(
                    404, f"Ticket {item['id']} not found", "Halo.Exceptions.NotFoundException"
                )
        for item in body:
            state.set_status(item["id"], item["status_id"])
        updated = [state.ticket(item["id"]) for item in body]
        return JSONResponse(updated[0] if len(updated) == 1 else updated, status_code=201)
