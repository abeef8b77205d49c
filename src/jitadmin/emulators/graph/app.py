"""Microsoft Graph v1.0 + Entra token endpoint emulator.

Routes, relative to wherever the app is mounted:

* ``GET  /login/{tenant}/v2.0/.well-known/openid-configuration`` (MSAL tenant discovery)
* ``GET  /login/common/discovery/instance`` (MSAL instance metadata, after a failed token call)
* ``POST /login/{tenant}/oauth2/v2.0/token`` (client credentials)
* ``/v1.0/...`` Graph (see ``v1``)
* ``/_admin/faults``, ``/_admin/requests``, ``/_admin/tokens``: test controls, no auth, no faults

Fault switches (``PUT /_admin/faults``) act on ``/v1.0`` and on the token endpoint; every non-admin
request is journaled before its latency so a test can see it in flight.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jitadmin.emulators.faults import FaultSettings
from jitadmin.emulators.graph.consent import consent_router
from jitadmin.emulators.graph.http import (
    EntraError,
    GraphError,
    GraphJSONResponse,
    entra_error_body,
    entra_fault,
    fault_code,
    graph_error_body,
    relative_path,
)
from jitadmin.emulators.graph.pim_routes import build_pim_router
from jitadmin.emulators.graph.registration import JWT_BEARER
from jitadmin.emulators.graph.state import TOKEN_LIFETIME_S, GraphState
from jitadmin.emulators.graph.v1 import build_v1_router
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

__all__ = ["GraphState", "create_graph_app"]

LOGIN_HOST = "https://login.microsoftonline.com"
GRAPH_SCOPES = frozenset(
    {"https://graph.microsoft.com/.default", "00000003-0000-0000-c000-000000000000/.default"}
)
_SECRET_FIELDS = frozenset({"client_secret", "client_assertion", "password"})
_REDACTED = "***"


def create_graph_app(
    customers: Sequence[SeedCustomer], creds: SeedCredentials
) -> tuple[FastAPI, GraphState]:
    """One tenant per customer, the app ``creds.graph_client_id`` consented in each."""
    state = GraphState(customers, creds)
    app = FastAPI(title="Microsoft Graph emulator", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.graph = state
    _install_error_handlers(app)
    _install_vendor_middleware(app, state)
    app.include_router(_login_router(state))
    app.include_router(consent_router(state))
    app.include_router(_admin_router(state))
    app.include_router(build_v1_router(state))
    app.include_router(build_pim_router(state))
    return app, state


# --- request ids, journal, faults ------------------------------------------------------------


def _ids(request: Request) -> tuple[str, str]:
    request_id = getattr(request.state, "request_id", None) or str(uuid.uuid4())
    client_request_id = getattr(request.state, "client_request_id", None) or request_id
    return request_id, client_request_id


def _redact(value: Any) -> Any:
    """Journal bodies must never carry passwords or client secrets."""
    if isinstance(value, dict):
        return {k: (_REDACTED if k in _SECRET_FIELDS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


async def _journal_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    content_type = request.headers.get("content-type", "")
    try:
        if "x-www-form-urlencoded" in content_type:
            return _redact(dict(parse_qsl(raw.decode())))
        return _redact(json.loads(raw))
    except (ValueError, UnicodeDecodeError):
        return None


def _is_token_call(path: str) -> bool:
    return path.startswith("/login/") and path.endswith("/oauth2/v2.0/token")


def _fault_response(
    request: Request, status: int, retry_after: str | None, token_call: bool
) -> Response:
    request_id, client_request_id = _ids(request)
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    if token_call:
        body = entra_error_body(entra_fault(status), request_id, client_request_id)
        return JSONResponse(body, status_code=status, headers=headers)
    code, message = fault_code(status)
    if status == 429:
        headers["x-ms-throttle-information"] = "ResourceUnitLimitExceeded"
    body = graph_error_body(code, message, request_id, client_request_id)
    return GraphJSONResponse(body, status_code=status, headers=headers)


def _install_vendor_middleware(app: FastAPI, state: GraphState) -> None:
    @app.middleware("http")
    async def vendor(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = relative_path(request.scope)
        if path.startswith("/_admin"):
            return await call_next(request)
        request_id = str(uuid.uuid4())
        request.state.request_id = request_id
        request.state.client_request_id = request.headers.get("client-request-id") or request_id
        token_call = _is_token_call(path)
        entry = state.faults.begin(
            request.method, path, request.url.query, await _journal_body(request)
        )
        try:
            response: Response | None = None
            if token_call or path == "/v1.0" or path.startswith("/v1.0/"):
                await state.faults.delay(request.method, path)
                picked = state.faults.pick_error(request.method, path)
                if picked is not None:
                    response = _fault_response(request, picked[0], picked[1], token_call)
            if response is None:
                response = await call_next(request)
        except Exception:
            entry.status = 500
            raise
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = request.state.client_request_id
        if path.startswith("/login/"):
            response.headers["x-ms-request-id"] = request_id
        else:
            response.headers["x-ms-ags-diagnostic"] = json.dumps(
                {"ServerInfo": {"DataCenter": "Local", "Slice": "E", "ScaleUnit": "000"}}
            )
        entry.status = response.status_code
        return response


def _install_error_handlers(app: FastAPI) -> None:
    async def on_graph_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GraphError)
        request_id, client_request_id = _ids(request)
        headers = dict(exc.headers)
        if exc.status == 401:
            headers["WWW-Authenticate"] = (
                f'Bearer realm="", authorization_uri="{LOGIN_HOST}/common/oauth2/authorize", '
                'client_id="00000003-0000-0000-c000-000000000000"'
            )
        body = graph_error_body(exc.code, exc.message, request_id, client_request_id, exc.details)
        return GraphJSONResponse(body, status_code=exc.status, headers=headers)

    async def on_entra_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EntraError)
        request_id, client_request_id = _ids(request)
        body = entra_error_body(exc, request_id, client_request_id)
        return JSONResponse(body, status_code=exc.status)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = relative_path(request.scope)
        if not path.startswith("/v1.0"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        if exc.status_code == 404:
            # Graph answers an unknown segment with 400, not 404.
            segment = path.rstrip("/").rsplit("/", 1)[-1]
            err = GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        else:
            code, message = fault_code(exc.status_code)
            err = GraphError(exc.status_code, code, message)
        return await on_graph_error(request, err)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if relative_path(request.scope).startswith("/_admin"):
            return JSONResponse({"detail": json.loads(json.dumps(exc.errors(), default=str))}, 422)
        return await on_graph_error(request, GraphError(400, "BadRequest", "Invalid request."))

    app.add_exception_handler(GraphError, on_graph_error)
    app.add_exception_handler(EntraError, on_entra_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


# --- Entra: discovery and token endpoint -----------------------------------------------------


def _tenant_not_found(tenant: str, error: str) -> EntraError:
    return EntraError(
        400,
        error,
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud.",
    )


def _missing(param: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{param}'.",
    )


def _check_client(
    state: GraphState, tenant_id: str, form: dict[str, str], tenant_key: str = ""
) -> None:
    client_id = form.get("client_id", "")
    if not client_id:
        raise _missing("client_id")
    app = state.app_consent(tenant_id, client_id)
    if app is None:
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant_id}'. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant.",
        )
    if form.get("client_assertion"):
        if form.get("client_assertion_type") != JWT_BEARER:
            raise _missing("client_assertion_type")
        state.check_client_assertion(tenant_id, tenant_key, form["client_assertion"])
        return
    secret = form.get("client_secret", "")
    if not secret:
        raise EntraError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )
    if app.secret_expired:
        raise EntraError(
            401,
            "invalid_client",
            7000222,
            f"The provided client secret keys for app '{client_id}' are expired.",
        )
    if secret != app.secret:
        raise EntraError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is "
            f"the client secret value, not the client secret ID, for a secret added to app "
            f"'{client_id}'.",
        )


def _login_router(state: GraphState) -> APIRouter:
    router = APIRouter(prefix="/login")

    @router.get("/common/discovery/instance")
    async def instance_discovery() -> Response:
        # MSAL calls this after any failed token request, to look for cached refresh tokens
        # under alias hosts; without it, acquire_token_for_client raises instead of
        # returning the error dict.
        return JSONResponse(
            {
                "tenant_discovery_endpoint": (
                    f"{LOGIN_HOST}/common/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {
                        "preferred_network": "login.microsoftonline.com",
                        "preferred_cache": "login.windows.net",
                        "aliases": [
                            "login.microsoftonline.com",
                            "login.windows.net",
                            "login.microsoft.com",
                            "sts.windows.net",
                        ],
                    }
                ],
            }
        )

    @router.get("/{tenant}/v2.0/.well-known/openid-configuration")
    async def discovery(tenant: str) -> Response:
        tenant_id = state.resolve_tenant(tenant)
        if tenant_id is None:
            raise _tenant_not_found(tenant, "invalid_tenant")
        # Always Microsoft's https host: MSAL refuses anything else; clients rewrite the host.
        base = f"{LOGIN_HOST}/{tenant_id}"
        return JSONResponse(
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{LOGIN_HOST}/{tenant_id}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
            }
        )

    @router.post("/{tenant}/oauth2/v2.0/token")
    async def token(request: Request, tenant: str) -> Response:
        tenant_id = state.resolve_tenant(tenant)
        if tenant_id is None:
            raise _tenant_not_found(tenant, "invalid_request")
        raw = await request.form()
        form = {k: v for k, v in raw.items() if isinstance(v, str)}
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise _missing("grant_type")
        if grant_type not in ("client_credentials", "password"):
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        if grant_type == "password":
            # ROPC (Entra v2-oauth-ropc): a user signs in with their own password; the public
            # client sends no secret. This is how a grantee reaches Graph as itself.
            if state.app_consent(tenant_id, form.get("client_id", "")) is None:
                raise _missing("client_id")
        else:
            _check_client(state, tenant_id, form, tenant)
        scope = form.get("scope", "")
        if not scope:
            raise _missing("scope")
        if scope.split() != [scope] or scope not in GRAPH_SCOPES:
            raise EntraError(
                400,
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. "
                f"The scope {scope} is not valid.",
            )
        if grant_type == "password":
            access_token = state.issue_user_token(
                tenant_id, form.get("username", ""), form.get("password", "")
            )
        else:
            access_token = state.issue_token(tenant_id, form["client_id"])
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_S,
                "ext_expires_in": TOKEN_LIFETIME_S,
                "access_token": access_token,
            },
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    return router


# --- test controls ---------------------------------------------------------------------------


def _admin_router(state: GraphState) -> APIRouter:
    router = APIRouter(prefix="/_admin")

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return state.faults.settings.model_dump()

    @router.put("/faults")
    async def put_faults(patch: FaultSettings) -> dict[str, Any]:
        # Only the fields sent are changed, so switches can be flipped one at a time.
        return state.faults.update(patch, set(patch.model_fields_set)).model_dump()

    @router.delete("/faults")
    async def reset_faults() -> dict[str, Any]:
        state.faults.reset()
        return state.faults.settings.model_dump()

    @router.get("/requests")
    async def get_requests() -> list[dict[str, Any]]:
        return state.faults.journal_dicts()

    @router.delete("/requests", status_code=204)
    async def clear_requests() -> Response:
        state.faults.clear_journal()
        return Response(status_code=204)

    @router.delete("/tokens", status_code=204)
    async def expire_tokens() -> Response:
        """Expire every issued access token (clients must re-acquire after a 401)."""
        state.expire_tokens()
        return Response(status_code=204)

    return router
