"""The FastAPI application: REST API, health, metrics and the web console."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text

import jitadmin
from jitadmin.core.grant import GrantState
from jitadmin.entrypoints import web
from jitadmin.entrypoints.api import problems
from jitadmin.entrypoints.api.routes import UnauthorizedError, router
from jitadmin.wiring import App


class _StateCollector:
    """Reads gauges from the database at scrape time, so every process reports the truth."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Any:
        with self.app.ctx.uow() as uow:
            counts = uow.grants.count_by_state()
            pending = uow.outbox.pending_count()
        grants = GaugeMetricFamily("jitadmin_grants", "Grants by state", labels=["state"])
        for state in GrantState:
            grants.add_metric([state.value], counts.get(state.value, 0))
        yield grants
        yield GaugeMetricFamily(
            "jitadmin_revoke_failed_grants",
            "Grants whose revocation could not be verified yet (alert on > 0)",
            value=counts.get(GrantState.REVOKE_FAILED.value, 0),
        )
        yield GaugeMetricFamily(
            "jitadmin_outbox_pending", "Ticket notes not yet delivered", value=pending
        )


def create_app(app: App) -> FastAPI:
    api = FastAPI(title="jitadmin", version=jitadmin.__version__)
    api.state.ctx = app.ctx
    api.state.app = app
    problems.install(api)

    @api.exception_handler(UnauthorizedError)
    async def _unauthorized(_: Request, error: UnauthorizedError) -> JSONResponse:
        return problems.problem(401, "Unauthorized", str(error))

    api.include_router(router)
    registry = CollectorRegistry()
    registry.register(_StateCollector(app))

    @api.get("/healthz")
    def healthz() -> dict[str, Any]:
        with app.database.engine.connect() as connection:
            connection.execute(text("select 1"))
        return {"status": "ok", "version": jitadmin.__version__}

    @api.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # The web console: "/" is the request form (or the sign-in page).
    web.install(api)
    return api
