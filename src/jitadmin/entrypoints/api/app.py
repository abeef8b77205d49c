"""The FastAPI application: REST API, health, metrics and the web console."""

from __future__ import annotations

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import jitadmin
from jitadmin.entrypoints import web
from jitadmin.entrypoints.api import (
    agent_routes,
    app_routes,
    docs_page,
    hardening,
    health,
    notification_routes,
    problems,
    responses,
    user_routes,
)
from jitadmin.entrypoints.api.routes import router
from jitadmin.wiring import App


def create_app(app: App) -> FastAPI:
    # No Swagger UI / ReDoc: they load third-party script from a CDN (docs/security.md).
    api = FastAPI(title="jitadmin", version=jitadmin.__version__, docs_url=None, redoc_url=None)
    api.state.ctx = app.ctx
    api.state.app = app
    problems.install(api)
    responses.describe_problems(api)
    api.include_router(router)
    api.include_router(user_routes.router)
    api.include_router(app_routes.router)
    api.include_router(notification_routes.router)
    api.include_router(agent_routes.router)
    health.install(api, app)  # /healthz, /readyz, /metrics
    if app.settings.api_docs:
        docs_page.install(api)  # /docs, script-free

    # The web console: "/" is the request form (or the sign-in page).
    web.install(api)
    api.add_middleware(
        hardening.Hardening,
        max_body=app.settings.max_request_bytes,
        hsts_always=app.settings.web_cookie_secure == "always",
    )
    # Outermost, so every layer sees the same client and scheme. Servers run with uvicorn's
    # own proxy handling off (it trusts loopback by default): only JITADMIN_FORWARDED_ALLOW_IPS.
    if trusted := app.settings.forwarded_allow_ips.strip():
        api.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)
    return api
