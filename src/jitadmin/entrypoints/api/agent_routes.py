"""REST API v1 for on-prem agents: the admin's side (enrollment codes, the agent list, revoking
an agent; bearer tokens) and the agents' own side (enroll, hello, lease a job, report steps
and results; every request signed with the agent's Ed25519 key, see docs/security.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from jitadmin.core.agent_protocol import (
    HEADER_AGENT,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
)
from jitadmin.core.clock import iso
from jitadmin.core.errors import UnauthorizedError, ValidationFailedError
from jitadmin.entrypoints.api.responses import Timestamp, problem_responses
from jitadmin.entrypoints.api.routes import Actor, Ctx, ctx_of
from jitadmin.ports import Agent
from jitadmin.services import agent_jobs, agents

router = APIRouter(prefix="/api/v1", responses=problem_responses(401, 403, 422))


class EnrollmentOut(BaseModel):
    code: str = Field(description="the one-time code, shown this once")
    expires_at: Timestamp


class AgentOut(BaseModel):
    id: str
    name: str
    state: str = Field(description="online | offline | revoked")
    last_seen_at: Timestamp | None
    version: str
    domain: str | None = None
    created_at: Timestamp
    revoked_at: Timestamp | None = None


class AgentList(BaseModel):
    items: list[AgentOut]


def agent_out(view: agents.AgentView) -> dict[str, Any]:
    a = view.agent
    return {
        "id": a.id, "name": a.name, "state": view.state, "last_seen_at": iso(a.last_seen_at),
        "version": a.version, "domain": a.domain, "created_at": iso(a.created_at),
        "revoked_at": iso(a.revoked_at),
    }  # fmt: skip


# -- admins ----------------------------------------------------------------------------


@router.post(
    "/customers/{slug}/agents/enrollments", status_code=201, response_model=EnrollmentOut,
    responses=problem_responses(404),
)  # fmt: skip
def create_enrollment(slug: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    code = agents.create_enrollment(ctx, actor, slug)
    return {"code": code.code, "expires_at": iso(code.expires_at)}


@router.get("/customers/{slug}/agents", response_model=AgentList, responses=problem_responses(404))
def list_agents(slug: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {"items": [agent_out(v) for v in agents.list_agents(ctx, actor, slug)]}


@router.delete("/agents/{agent_id}", response_model=AgentOut, responses=problem_responses(404))
def revoke_agent(agent_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    agent = agents.revoke_agent(ctx, actor, agent_id)
    return agent_out(agents.AgentView(agent, "revoked"))


# -- agents (signed requests) ----------------------------------------------------------


async def _signed(request: Request, *, enrolling: bool = False) -> agents.SignedRequest:
    headers = request.headers
    parts = {h: headers.get(h) for h in (HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)}
    if not all(parts.values()) or (not enrolling and not headers.get(HEADER_AGENT)):
        raise UnauthorizedError("agent request without its signature headers")
    query = request.url.query
    return agents.SignedRequest(
        method=request.method,
        path=request.url.path + (f"?{query}" if query else ""),
        body=await request.body(),
        agent_id=headers.get(HEADER_AGENT) or "",
        timestamp=str(parts[HEADER_TIMESTAMP]),
        nonce=str(parts[HEADER_NONCE]),
        signature=str(parts[HEADER_SIGNATURE]),
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise ValidationFailedError.single("body", "must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise ValidationFailedError.single("body", "must be a JSON object")
    return parsed


async def _agent(request: Request) -> tuple[Agent, dict[str, Any]]:
    signed = await _signed(request)
    ctx = ctx_of(request)
    agent = await run_in_threadpool(agents.authenticate, ctx, signed)
    return agent, _json(signed.body)


@router.post("/agent/enroll", status_code=201, include_in_schema=False)
async def enroll(request: Request) -> dict[str, Any]:
    signed = await _signed(request, enrolling=True)
    agent = await run_in_threadpool(agents.enroll, ctx_of(request), signed)
    return {"agent_id": agent.id, "customer": agent.customer, "name": agent.name}


@router.post("/agent/hello", include_in_schema=False)
async def hello(request: Request) -> dict[str, Any]:
    agent, body = await _agent(request)
    ctx = ctx_of(request)
    await run_in_threadpool(
        agents.report_domain, ctx, agent, body.get("version"), body.get("tenant_id"),
        body.get("domain"),
    )  # fmt: skip
    grants = await run_in_threadpool(agent_jobs.failsafe_grants, ctx, agent)
    return {"agent_id": agent.id, "customer": agent.customer, "grants": grants}


class _Bell:
    """Wakes this event loop's waiting long polls when a job is written (from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()

    def ring_from_thread(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: its server has stopped
            self.loop.call_soon_threadsafe(self._ring)

    def _ring(self) -> None:
        self.event.set()
        self.event = asyncio.Event()


def _bell(request: Request) -> _Bell:
    bell: _Bell | None = getattr(request.app.state, "agent_bell", None)
    if bell is None:
        bell = request.app.state.agent_bell = _Bell(asyncio.get_running_loop())
        ctx_of(request).agent_job_listeners.append(bell.ring_from_thread)
    return bell


async def _long_poll(request: Request, agent: Agent, wait_s: float) -> Any:
    """Lease a job, or wait for one without holding a thread (a bell, and a look each second
    for jobs another process wrote), until ``wait_s`` of wall-clock time have passed."""
    ctx, bell = ctx_of(request), _bell(request)
    deadline = time.monotonic() + min(wait_s, agent_jobs.MAX_WAIT_S)
    while True:
        rung = bell.event  # taken before the look, so a job written meanwhile is not missed
        leased = await run_in_threadpool(agent_jobs.lease_job, ctx, agent)
        remaining = deadline - time.monotonic()
        if leased is not None or remaining <= 0:
            return leased
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rung.wait(), timeout=min(remaining, 1.0))


@router.post("/agent/jobs/lease", include_in_schema=False)
async def lease(request: Request, wait: float = Query(0.0, ge=0, le=30)) -> dict[str, Any]:
    agent, _ = await _agent(request)
    ctx = ctx_of(request)
    leased = await _long_poll(request, agent, wait)
    grants = await run_in_threadpool(agent_jobs.failsafe_grants, ctx, agent)
    if leased is None:
        return {"job": None, "grants": grants}
    job = leased.job
    shown = {
        "id": job.id, "grant_id": job.grant_id, "kind": job.kind, "payload": job.payload,
        "attempts": job.attempts, "secret": leased.secret,
    }  # fmt: skip
    return {"job": shown, "grants": grants}


@router.post("/agent/jobs/{job_id}/steps", include_in_schema=False)
async def step(job_id: str, request: Request) -> dict[str, Any]:
    agent, body = await _agent(request)
    accepted = await run_in_threadpool(
        agent_jobs.report_step, ctx_of(request), agent, job_id, body.get("step"), body.get("data")
    )
    return {"accepted": accepted}


@router.post("/agent/jobs/{job_id}/result", include_in_schema=False)
async def result(job_id: str, request: Request) -> dict[str, Any]:
    agent, body = await _agent(request)
    accepted = await run_in_threadpool(
        agent_jobs.report_result, ctx_of(request), agent, job_id, body
    )
    return {"accepted": accepted}


@router.post("/agent/failsafe", include_in_schema=False)
async def failsafe(request: Request) -> dict[str, Any]:
    agent, body = await _agent(request)
    accepted = await run_in_threadpool(agent_jobs.report_failsafe, ctx_of(request), agent, body)
    return {"accepted": accepted}
