"""Liveness, readiness and Prometheus metrics.

Two sources make up ``/metrics``:

* gauges read from the database at scrape time (grants by state, overdue revocations, outbox
  backlog, worker heartbeats), so any API process reports the truth for every worker;
* events counted in this process (``App.metrics``: revocation lag, connector errors, drift),
  which only the process that saw them can count. ``jitadmin serve`` runs the worker in the
  same process; a worker started alone serves its own on ``JITADMIN_WORKER_METRICS_PORT``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

import jitadmin
from jitadmin.core.errors import FeatureOffError, NotReadyError, UnauthorizedError
from jitadmin.core.grant import Grant, GrantState
from jitadmin.core.notifications import FAILING_AFTER
from jitadmin.entrypoints.api import problems
from jitadmin.entrypoints.api.responses import Health, problem_responses
from jitadmin.ports import Agent, NotificationChannel
from jitadmin.services.agent_jobs import offline_customers
from jitadmin.services.agents import state_of
from jitadmin.wiring import App

log = logging.getLogger("jitadmin.api")
# Heartbeats older than this are no longer reported: that worker is gone, not just late.
HEARTBEAT_HORIZON = timedelta(hours=1)


class DatabaseCollector:
    """Reads gauges from the database at scrape time, so every process reports the truth."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        now = self.app.ctx.clock.now()
        grace = timedelta(seconds=self.app.settings.overdue_grace_seconds)
        with self.app.ctx.uow() as uow:
            counts = uow.grants.count_by_state()
            pending = uow.outbox.pending_count()
            overdue = uow.runtime.overdue_revocations(now - grace)
            beats = uow.runtime.heartbeats(now - HEARTBEAT_HORIZON)
            channels = uow.notifications.channels()
            backlog = uow.notifications.backlog()
            agents = uow.agents.all()
            jobs = uow.agents.backlog()
            stranded = offline_customers(self.app.ctx, uow)
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
            "jitadmin_overdue_revocations",
            "Grants still not revoked longer than the grace after their expiry (alert on > 0)",
            value=overdue,
        )
        yield GaugeMetricFamily(
            "jitadmin_outbox_pending", "Ticket notes not yet delivered", value=pending
        )
        yield from _channel_gauges(channels, backlog)
        yield from _agent_gauges(agents, jobs, stranded, now)
        heartbeat = GaugeMetricFamily(
            "jitadmin_worker_heartbeat_timestamp_seconds",
            "When each worker's loop last ran (Unix time; alert when it falls behind)",
            labels=["worker"],
        )
        for worker, at in sorted(beats.items()):
            heartbeat.add_metric([worker], at.timestamp())
        yield heartbeat


def _channel_gauges(
    channels: list[NotificationChannel], backlog: dict[str, int]
) -> Iterator[Metric]:
    failing = GaugeMetricFamily(
        "jitadmin_notification_channel_failing",
        "1 while a notification channel's recent deliveries keep failing (alert on 1)",
        labels=["channel", "kind"],
    )
    pending = GaugeMetricFamily(
        "jitadmin_notification_backlog",
        "Notifications not yet delivered, per channel",
        labels=["channel", "kind"],
    )
    for channel in channels:
        labels = [channel.id, channel.kind]
        failing.add_metric(labels, int(channel.consecutive_failures >= FAILING_AFTER))
        pending.add_metric(labels, backlog.get(channel.id, 0))
    yield failing
    yield pending


def _agent_gauges(
    agents: list[Agent], jobs: dict[str, int], stranded: dict[str, list[Grant]], now: datetime
) -> Iterator[Metric]:
    seen = GaugeMetricFamily(
        "jitadmin_agent_last_seen_timestamp_seconds",
        "When each enrolled on-prem agent last made a request (Unix time)",
        labels=["customer", "agent", "name"],
    )
    online = GaugeMetricFamily(
        "jitadmin_agent_online", "1 while the on-prem agent is online", labels=["customer", "agent"]
    )
    for agent in agents:
        if agent.revoked_at is None:
            labels = [agent.customer, agent.id]
            seen.add_metric(
                [*labels, agent.name], (agent.last_seen_at or agent.created_at).timestamp()
            )
            online.add_metric(labels, int(state_of(agent, now) == "online"))
    backlog = GaugeMetricFamily(
        "jitadmin_agent_job_backlog", "Jobs waiting for or held by an on-prem agent",
        labels=["customer"],
    )  # fmt: skip
    for customer, count in sorted(jobs.items()):
        backlog.add_metric([customer], count)
    alert = GaugeMetricFamily(
        "jitadmin_agent_offline_grants",
        "Grants needing an on-prem agent whose customer has none online (alert on > 0)",
        labels=["customer"],
    )
    for customer, grants in sorted(stranded.items()):
        alert.add_metric([customer], len(grants))
    yield from (seen, online, backlog, alert)


def install(api: FastAPI, app: App) -> None:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(app))

    @api.get("/healthz", response_model=Health)
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers. The database is readiness, not liveness."""
        return {"status": "ok", "version": jitadmin.__version__}

    @api.get("/readyz", response_model=Health, responses=problem_responses(503))
    def readyz() -> dict[str, Any] | JSONResponse:
        """Readiness: fails (503) while the database cannot be reached."""
        try:
            with app.database.engine.connect() as connection:
                connection.execute(text("select 1"))
        except SQLAlchemyError as error:
            log.warning("not ready: database unreachable (%s)", type(error).__name__)
            return problems.problem_response(NotReadyError("the database is unreachable"))
        return {"status": "ready", "version": jitadmin.__version__}

    @api.get(
        "/metrics",
        response_model=None,
        response_class=PlainTextResponse,
        responses=problem_responses(401, 404),
    )
    def metrics(request: Request) -> Response:
        """Prometheus text, for the bearer of JITADMIN_METRICS_TOKEN (unset: off, 404)."""
        token = app.settings.metrics_token
        if token is None:
            return problems.problem_response(
                FeatureOffError("metrics are off: set JITADMIN_METRICS_TOKEN")
            )
        expected = f"Bearer {token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return problems.problem_response(UnauthorizedError("missing or wrong metrics token"))
        body = generate_latest(registry) + generate_latest(app.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
