"""The jobs handed to on-prem agents: the queue the agent-backed identity provider writes to,
the agents' leases, the steps and results they report, and the offline alert.

A job is one step of one grant (grant, revoke, extend). Any online agent of the grant's
customer leases it; an agent that dies mid-job lets its lease lapse and another takes it over
(jobs are idempotent ensure-steps). Each progress step the agent reports is recorded as the
direct adapter's are; its result (with read-back evidence) moves the grant's next attempt to
now, and the worker's next attempt reads it. The one-time password travels sealed at rest in
the job row, opened only for the agent that leased it, and dropped with the result.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jitadmin.core import texts
from jitadmin.core.agent_protocol import (
    AGENT_STEPS,
    DONE,
    ERROR_KINDS,
    FAILED,
    JOB_EXTEND,
    JOB_GRANT,
    JOB_REVOKE,
    PENDING,
)
from jitadmin.core.errors import NotFoundError, UnauthorizedError, ValidationFailedError
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant, GrantState
from jitadmin.ports import Agent, AgentJob, UnitOfWork
from jitadmin.services.agents import AGENT_KIND, agent_actor, state_of
from jitadmin.services.backoff import SYSTEM
from jitadmin.services.context import ServiceContext, log
from jitadmin.services.notifications import notify
from jitadmin.services.progress import progress_recorder

MAX_WAIT_S = 30.0  # the longest long poll
_DATA_KEYS = 32
_DATA_VALUE = 2048
# Grants the agent's fail-safe must know the end of: access may exist in the domain.
_FAILSAFE_STATES = (GrantState.ACTIVE, GrantState.REVOKING, GrantState.REVOKE_FAILED)


def job_context(job_id: str) -> str:
    return f"agent_job:{job_id}"


class AgentJobs:
    """``ports.AgentJobQueue`` on the database: what the agent-backed provider calls."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def submit(
        self, customer: str, grant_id: str, kind: str, payload: dict[str, Any],
        secret: str | None = None,
    ) -> AgentJob:  # fmt: skip
        with self.ctx.uow() as uow:
            if kind == JOB_REVOKE:
                # Not taken yet, a grant or extend job need not run at all; a taken one runs to
                # its end first (the lease keeps a grant's jobs in order).
                uow.agents.retire_pending(grant_id, (JOB_GRANT, JOB_EXTEND))
            current = uow.agents.current_job(grant_id, kind)
            if current is not None:
                if kind != JOB_EXTEND or current.payload == payload:
                    return current
                # Extended again: the newest end replaces whatever the last extend job said.
                uow.agents.retire(current.id)
            job_id = str(uuid.uuid4())
            job = AgentJob(
                id=job_id, customer=customer, grant_id=grant_id, kind=kind, payload=payload,
                state=PENDING, created_at=self.ctx.clock.now(),
                sealed=None if secret is None else self.ctx.box.seal(secret, job_context(job_id)),
            )  # fmt: skip
            uow.agents.add_job(job)
            uow.audit.append(
                AuditEvent(
                    kind="agent.job_queued", actor=SYSTEM, at=job.created_at, grant_id=grant_id,
                    customer=customer, data={"job_id": job_id, "job": kind},
                )
            )  # fmt: skip
            uow.commit()
        for listener in list(self.ctx.agent_job_listeners):
            listener()
        return job

    def retire(self, job_id: str) -> None:
        with self.ctx.uow() as uow:
            uow.agents.retire(job_id)
            uow.commit()

    def domain(self, customer: str) -> tuple[str | None, bool]:
        now = self.ctx.clock.now()
        with self.ctx.uow() as uow:
            agents = [a for a in uow.agents.for_customer(customer) if a.revoked_at is None]
        online = any(state_of(a, now) == "online" for a in agents)
        reported = sorted(
            (a for a in agents if a.tenant_id),
            key=lambda a: a.last_seen_at or a.created_at,
            reverse=True,
        )
        return (reported[0].tenant_id if reported else None), online


@dataclass(frozen=True)
class LeasedJob:
    job: AgentJob
    secret: str | None  # opened for this agent only; never logged


def lease_job(ctx: ServiceContext, agent: Agent) -> LeasedJob | None:
    """The customer's next job for this agent, if there is one now (the API's long poll asks
    again when a job is written, and at least every second, without holding a thread)."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        current = uow.agents.get(agent.id)
        if current is None or current.revoked_at is not None:
            # Revoked while it waited: it gets nothing more (its next request is a 401).
            raise UnauthorizedError("unknown or revoked agent")
        job = uow.agents.lease(
            agent.customer, agent.id, now, now + timedelta(seconds=ctx.agent_job_lease_s)
        )
        uow.commit()
    if job is None:
        return None
    secret = ctx.box.open(job.sealed, job_context(job.id)) if job.sealed else None
    return LeasedJob(job, secret)


def _own_job(uow: UnitOfWork, agent: Agent, job_id: str) -> AgentJob:
    job = uow.agents.job(job_id)
    # Another customer's job is unknown to this agent, whatever its id.
    if job is None or job.customer != agent.customer:
        raise NotFoundError("job", job_id)
    return job


def _plain_data(data: Any, field_name: str) -> dict[str, str | int | bool | None]:
    if not isinstance(data, dict) or len(data) > _DATA_KEYS:
        raise ValidationFailedError.single(field_name, f"must be an object of <= {_DATA_KEYS}")
    plain: dict[str, str | int | bool | None] = {}
    for key, given in data.items():
        if not isinstance(key, str) or len(key) > 64:
            raise ValidationFailedError.single(field_name, "keys must be short strings")
        # other_dcs: the URLs written and read back, as one text.
        value = ", ".join(str(v) for v in given) if isinstance(given, list) else given
        if value is not None and not isinstance(value, str | int | bool):
            raise ValidationFailedError.single(field_name, "values must be text, numbers, bools")
        if isinstance(value, str) and len(value) > _DATA_VALUE:
            raise ValidationFailedError.single(field_name, f"values must be <= {_DATA_VALUE}")
        plain[key] = value
    return plain


def report_step(ctx: ServiceContext, agent: Agent, job_id: str, step: Any, data: Any) -> bool:
    """Record one progress step of a job; False when the job is finished already."""
    if not isinstance(step, str) or step not in AGENT_STEPS:
        raise ValidationFailedError.single("step", "must be one of the adapter's steps")
    plain = _plain_data(data if data is not None else {}, "data")
    with ctx.uow() as uow:
        job = _own_job(uow, agent, job_id)
        until = ctx.clock.now() + timedelta(seconds=ctx.agent_job_lease_s)
        # Only the agent holding the job reports its steps; False tells any other (one whose
        # lease lapsed and went to another agent) to stop.
        if not uow.agents.renew(job.id, agent.id, until):
            return False
        uow.commit()
    progress_recorder(ctx, job.grant_id)(step, {**plain, "agent_id": agent.id})
    return True


def report_result(
    ctx: ServiceContext, agent: Agent, job_id: str, body: Any, *, unleased: bool = False
) -> bool:
    """Store a job's result and bring the grant's next attempt forward; False when another
    result was in first (a duplicate from the spool, or a second agent)."""
    if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
        raise ValidationFailedError.single("ok", "must be true or false")
    if body["ok"]:
        result: dict[str, Any] = {"ok": True}
        if body.get("username") is not None:
            if not isinstance(body["username"], str) or len(body["username"]) > 256:
                raise ValidationFailedError.single("username", "must be a short string")
            result["username"] = body["username"]
        result["account"] = _plain_data(body.get("account") or {}, "account")
        result["evidence"] = _plain_data(body.get("evidence") or {}, "evidence")
    else:
        error = body.get("error")
        if not isinstance(error, dict) or error.get("kind") not in ERROR_KINDS:
            raise ValidationFailedError.single("error.kind", f"must be one of {ERROR_KINDS}")
        message = str(error.get("message") or "")[:500]
        result = {"ok": False, "error": {"kind": error["kind"], "message": message}}
    now = ctx.clock.now()
    with ctx.uow() as uow:
        job = _own_job(uow, agent, job_id)
        state = DONE if result["ok"] else FAILED
        if not uow.agents.finish(job.id, agent.id, state, result, now, unleased=unleased):
            return False
        uow.grants.postpone(job.grant_id, now)
        uow.audit.append(
            AuditEvent(
                kind=f"agent.job_{state}", actor=agent_actor(agent.id), at=now,
                grant_id=job.grant_id, customer=job.customer,
                data={"job_id": job.id, "job": job.kind,
                      "error": result.get("error", {}).get("message")},
            )
        )  # fmt: skip
        uow.commit()
    ctx.wake()
    return True


def failsafe_grants(ctx: ServiceContext, agent: Agent) -> list[dict[str, Any]]:
    """The customer's agent grants that may hold access, with their ends: what the agent's
    fail-safe revokes locally when it cannot reach the server past an end."""
    found: list[dict[str, Any]] = []
    with ctx.uow() as uow:
        for state in _FAILSAFE_STATES:
            for grant in uow.grants.find(state=state.value, customer=agent.customer):
                if grant.identity_provider != AGENT_KIND or not grant.username:
                    continue
                found.append(
                    {"grant_id": grant.id, "requester": grant.requester,
                     "username": grant.username, "expires_at": grant.expires_at.isoformat(),
                     "object_guid": grant.account.get("object_guid"),
                     "revoke_now": state is not GrantState.ACTIVE}
                )  # fmt: skip
    return found


def alert_offline(ctx: ServiceContext, uow: UnitOfWork, grant: Grant, now: datetime) -> bool:
    """No online agent while the grant needs one: audit, metric and one ticket note per grant
    (the outbox marker makes sure of one); True when the alert was raised now."""
    marker = texts.marker(grant.id, "agent_offline")
    if any(m.marker == marker for m in uow.outbox.for_grant(grant.id)):
        return False
    uow.outbox.enqueue(grant, marker, texts.agent_offline_note(grant), now)
    uow.audit.append(
        AuditEvent(
            kind="agent.offline_alert", actor=SYSTEM, at=now, grant_id=grant.id,
            customer=grant.customer, data={"state": grant.state.value},
        )
    )  # fmt: skip
    notify(ctx, uow, "agent.offline", grant, now)
    ctx.metrics.security_alert("agent_offline")
    log.error("grant %s: no on-prem agent of %s is online", grant.id, grant.customer)
    return True


def report_failsafe(ctx: ServiceContext, agent: Agent, body: Any) -> bool:
    """The agent revoked a grant itself while the server was unreachable: record it, and
    finish the grant's revoke job with the agent's read-back so the worker completes the
    revocation (one revoke note, as always). False when the grant is finished already."""
    if not isinstance(body, dict) or not isinstance(body.get("grant_id"), str):
        raise ValidationFailedError.single("grant_id", "is required")
    steps = body.get("steps") or []
    if not isinstance(steps, list) or not all(s in AGENT_STEPS for s in steps):
        raise ValidationFailedError.single("steps", "must be the adapter's steps")
    grant_id = body["grant_id"]
    with ctx.uow() as uow:
        grant = uow.grants.get(grant_id)
        if (
            grant is None
            or grant.customer != agent.customer
            or grant.identity_provider != (AGENT_KIND)
        ):
            raise NotFoundError("grant", grant_id)
        if grant.state not in _FAILSAFE_STATES:
            return False
        if grant.state is GrantState.ACTIVE and ctx.clock.now() < grant.expires_at:
            # Not ended here (the agent's clock runs ahead): the revocation at the end runs a
            # revoke job of its own with a fresh read-back, not this report.
            return False
    progress_recorder(ctx, grant_id)(
        "failsafe_revoked", {"agent_id": agent.id, "failsafe_steps": ",".join(steps)}
    )
    payload = {"requester": grant.requester, "username": grant.username, "failsafe": True}
    job = AgentJobs(ctx).submit(grant.customer, grant_id, "revoke", payload)
    evidence = {"failsafe": True, "steps": ",".join(steps)}
    done = {"ok": True, "evidence": evidence}
    return report_result(ctx, agent, job.id, done, unleased=True) or True


_NEEDS_AGENT = (
    GrantState.PROVISIONING, GrantState.ACTIVE, GrantState.REVOKING, GrantState.REVOKE_FAILED,
)  # fmt: skip


def offline_customers(ctx: ServiceContext, uow: UnitOfWork) -> dict[str, list[Grant]]:
    """Customers whose agent grants need an agent while none of theirs is online."""
    now = ctx.clock.now()
    enrolled: dict[str, bool] = {}
    for agent in uow.agents.all():
        if agent.revoked_at is None:
            online = state_of(agent, now) == "online"
            enrolled[agent.customer] = enrolled.get(agent.customer, False) or online
    found: dict[str, list[Grant]] = {}
    for customer, online in enrolled.items():
        if online:
            continue
        affected = [
            g
            for state in _NEEDS_AGENT
            for g in uow.grants.find(state=state.value, customer=customer)
            if g.identity_provider == AGENT_KIND
        ]
        if affected:
            found[customer] = affected
    return found


def alert_offline_agents(ctx: ServiceContext) -> int:
    """The worker's periodic look: each grant of a customer without an online agent gets its
    alert once (audit event, metric, ticket note), whatever state it is in."""
    raised = 0
    with ctx.uow() as uow:
        now = ctx.clock.now()
        for grants in offline_customers(ctx, uow).values():
            raised += sum(alert_offline(ctx, uow, grant, now) for grant in grants)
        uow.commit()
    if raised:
        ctx.wake()
    return raised
