"""The FastAPI application: REST API, health, metrics and the web console."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import jitadmin
from jitadmin.entrypoints import web
from jitadmin.entrypoints.api import hardening, health, problems
from jitadmin.entrypoints.api.routes import UnauthorizedError, router
from jitadmin.wiring import App


def create_app(app: App) -> FastAPI:
    api = FastAPI(title="jitadmin", version=jitadmin.__version__)
    api.state.ctx = app.ctx
    api.state.app = app
    problems.install(api)

    @api.exception_handler(UnauthorizedError)
    async def _unauthorized(_: Request, error: UnauthorizedError) -> JSONResponse:
        return problems.problem(401, "Unauthorized", str(error))

    api.include_router(router)
    health.install(api, app)  # /healthz, /readyz, /metrics

    # The web console: "/" is the request form (or the sign-in page).
    web.install(api)
    api.add_middleware(
        hardening.Hardening,
        max_body=app.settings.max_request_bytes,
        hsts_always=app.settings.web_cookie_secure == "always",
    )
    return api
