"""On-prem agents: one-time enrollment codes, enrollment, the agent registry, revocation and
the authentication of every signed agent request (docs/security.md, "On-prem agents").

An agent makes its Ed25519 key pair on its own machine and sends only the public key, with
a one-time code an admin created for one customer (stored as a keyed hash, 15 minutes, used
once). Every later request carries the agent's id, a timestamp, a nonce and a signature over
method, path, timestamp, nonce and the body's SHA-256: a request from an unknown or revoked
agent, signed by another key, altered, too old or replayed is refused with 401.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jitadmin.core import fields
from jitadmin.core.agent_protocol import MAX_SKEW_S, NONCE_PATTERN, signed_text
from jitadmin.core.errors import NotFoundError, UnauthorizedError, ValidationFailedError
from jitadmin.core.events import AuditEvent
from jitadmin.ports import Agent, ConnectionRecord, UnitOfWork, User
from jitadmin.services.context import (
    ADMIN,
    ServiceContext,
    require_customer,
    require_role,
    settings_context,
)

ENROLLMENT_PURPOSE = "agent-enrollment"
AGENT_KIND = "ad_agent"  # the connection an enrolled agent stands for
ENROLLMENT_MINUTES = 15
# An agent long-polls about every 25 s; seen within this window, it counts as online.
ONLINE_WINDOW_S = 90.0
_NAME_MAX = 100


@dataclass(frozen=True)
class EnrollmentCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class SignedRequest:
    """What the API hands over of an agent's request: the signed parts, untouched."""

    method: str
    path: str
    body: bytes
    agent_id: str
    timestamp: str
    nonce: str
    signature: str


@dataclass(frozen=True)
class AgentView:
    agent: Agent
    state: str  # online | offline | revoked


def _audit(
    ctx: ServiceContext, kind: str, actor: str, customer: str | None, **data: Any
) -> AuditEvent:
    return AuditEvent(kind=kind, actor=actor, at=ctx.clock.now(), customer=customer, data=data)


def agent_actor(agent_id: str) -> str:
    return f"agent:{agent_id}"


def state_of(agent: Agent, now: datetime) -> str:
    if agent.revoked_at is not None:
        return "revoked"
    seen = agent.last_seen_at
    online = seen is not None and (now - seen).total_seconds() <= ONLINE_WINDOW_S
    return "online" if online else "offline"


# -- admin side ----------------------------------------------------------------------------


def create_enrollment(ctx: ServiceContext, actor: User, slug: str) -> EnrollmentCode:
    require_role(actor, ADMIN)
    code = secrets.token_urlsafe(24)
    now = ctx.clock.now()
    expires = now + timedelta(minutes=ENROLLMENT_MINUTES)
    with ctx.uow() as uow:
        customer = require_customer(uow, actor, slug, "path")
        digest = ctx.box.digests(ENROLLMENT_PURPOSE, code)[0]
        uow.agents.add_enrollment(digest, customer.slug, actor.username, now, expires)
        # Never the code itself: like a token, it is shown once and stored only as a hash.
        uow.audit.append(
            _audit(ctx, "agent.enrollment_created", actor.username, customer.slug,
                   expires_at=expires.isoformat())
        )  # fmt: skip
        uow.commit()
    return EnrollmentCode(code, expires)


def list_agents(ctx: ServiceContext, actor: User, slug: str) -> list[AgentView]:
    require_role(actor, ADMIN)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        customer = require_customer(uow, actor, slug, "path")
        return [AgentView(a, state_of(a, now)) for a in uow.agents.for_customer(customer.slug)]


def revoke_agent(ctx: ServiceContext, actor: User, agent_id: str) -> Agent:
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        agent = uow.agents.get(agent_id) if fields.is_uuid(agent_id) else None
        if agent is None or not actor.may_use(agent.customer):
            raise NotFoundError("agent", agent_id)
        if uow.agents.revoke(agent.id, ctx.clock.now()):
            uow.agents.release_agent(agent.id)  # another agent finishes what it held
            uow.audit.append(
                _audit(ctx, "agent.revoked", actor.username, agent.customer,
                       agent_id=agent.id, name=agent.name)
            )  # fmt: skip
        uow.commit()
        revoked = uow.agents.get(agent.id)
    assert revoked is not None
    return revoked


# -- the agent's side ----------------------------------------------------------------------


def _public_key(raw: str, field_name: str = "public_key") -> Ed25519PublicKey:
    try:
        key_bytes = base64.b64decode(raw, validate=True)
        if len(key_bytes) != 32:
            raise ValueError("length")
        return Ed25519PublicKey.from_public_bytes(key_bytes)
    except (ValueError, binascii.Error):
        raise ValidationFailedError.single(
            field_name, "must be a base64 raw Ed25519 public key (32 bytes)"
        ) from None


def _verify(key: Ed25519PublicKey, request: SignedRequest, now: datetime) -> None:
    """Signature and freshness; the nonce is checked by the caller, after the signature."""
    try:
        stamp = int(request.timestamp)
    except ValueError:
        raise UnauthorizedError("agent request without a valid timestamp") from None
    if abs(now.timestamp() - stamp) > MAX_SKEW_S:
        raise UnauthorizedError(
            f"agent request timestamp is more than {MAX_SKEW_S} s from the server's clock"
        )
    if not NONCE_PATTERN.fullmatch(request.nonce):
        raise UnauthorizedError("agent request without a valid nonce")
    text = signed_text(request.method, request.path, request.timestamp, request.nonce,
                       request.body)  # fmt: skip
    try:
        key.verify(base64.b64decode(request.signature, validate=True), text)
    except (InvalidSignature, ValueError, binascii.Error):
        raise UnauthorizedError("agent request signature does not verify") from None


def _remember_nonce(uow: UnitOfWork, agent_id: str, nonce: str, now: datetime) -> None:
    if not uow.agents.use_nonce(agent_id, nonce, now):
        raise UnauthorizedError("agent request replayed (nonce seen before)")
    uow.agents.prune_nonces(now - timedelta(seconds=2 * MAX_SKEW_S))


def enroll(ctx: ServiceContext, request: SignedRequest) -> Agent:
    """Exchange a one-time code for an agent registration; the request is signed by the new
    key itself (proof that the caller holds the private key it registers)."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ValidationFailedError.single("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationFailedError.single("body", "must be a JSON object")
    given = {k: body.get(k) for k in ("code", "name", "public_key", "version", "tenant_id",
                                     "domain")}  # fmt: skip
    for name in ("code", "name", "public_key"):
        value = given[name]
        if not isinstance(value, str) or not value.strip():
            raise ValidationFailedError.single(name, "is required")
    _check_self_report(given)
    name = str(given["name"]).strip()
    if len(name) > _NAME_MAX:
        raise ValidationFailedError.single("name", f"must be at most {_NAME_MAX} characters")
    fields.check({"name": name})
    key = _public_key(str(given["public_key"]))
    now = ctx.clock.now()
    _verify(key, request, now)
    with ctx.uow() as uow:
        customer = uow.agents.use_enrollment(
            ctx.box.digests(ENROLLMENT_PURPOSE, str(given["code"])), now
        )
        if customer is None:
            raise UnauthorizedError("the enrollment code is unknown, used already or expired")
        agent = Agent(
            id=str(uuid.uuid4()), customer=customer, name=name,
            public_key=str(given["public_key"]), created_at=now,
            created_by=agent_actor("enrollment"), version=str(given["version"] or "")[:40],
            tenant_id=_short(given["tenant_id"], 200), domain=_short(given["domain"], 255),
            last_seen_at=now,
        )  # fmt: skip
        uow.agents.add(agent)
        _remember_nonce(uow, agent.id, request.nonce, now)
        if uow.connections.get(customer, AGENT_KIND) is None:
            # The customer now offers On Prem AD via agent; nothing secret is stored for it.
            sealed = ctx.box.seal("{}", settings_context(customer, AGENT_KIND, {}))
            uow.connections.put(ConnectionRecord(AGENT_KIND, {}, sealed, customer), now)
        uow.audit.append(
            _audit(ctx, "agent.enrolled", agent_actor(agent.id), customer, agent_id=agent.id,
                   name=name, version=agent.version, domain=agent.domain,
                   tenant_id=agent.tenant_id)
        )  # fmt: skip
        uow.commit()
    return agent


_DOMAIN_SID = re.compile(r"S-1-5-21(-\d{1,10}){3}")


def _check_self_report(given: dict[str, Any]) -> None:
    """An agent's version and domain are text; the domain SID (what its grants are pinned to)
    has a domain SID's form."""
    for name in ("version", "tenant_id", "domain"):
        if given.get(name) is not None and not isinstance(given[name], str):
            raise ValidationFailedError.single(name, "must be a string")
    sid = given.get("tenant_id")
    if sid and not _DOMAIN_SID.fullmatch(sid):
        raise ValidationFailedError.single("tenant_id", "must be a domain SID (S-1-5-21-a-b-c)")


def _short(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def authenticate(ctx: ServiceContext, request: SignedRequest) -> Agent:
    """The agent that signed ``request``; 401 for anything else. Marks it seen."""
    if not fields.is_uuid(request.agent_id):
        raise UnauthorizedError("unknown agent")
    now = ctx.clock.now()
    with ctx.uow() as uow:
        agent = uow.agents.get(request.agent_id)
        if agent is None or agent.revoked_at is not None:
            # One message for both: a revoked agent learns nothing it could use.
            raise UnauthorizedError("unknown or revoked agent")
        _verify(_public_key(agent.public_key), request, now)
        _remember_nonce(uow, agent.id, request.nonce, now)
        uow.agents.seen(agent.id, now)
        uow.commit()
    return agent


def report_domain(
    ctx: ServiceContext, agent: Agent, version: str | None, tenant_id: str | None,
    domain: str | None,
) -> None:  # fmt: skip
    """What a running agent says of itself (its version, the domain its DC is in)."""
    _check_self_report({"version": version, "tenant_id": tenant_id, "domain": domain})
    with ctx.uow() as uow:
        uow.agents.seen(
            agent.id, ctx.clock.now(), version=_short(version, 40),
            tenant_id=_short(tenant_id, 200), domain=_short(domain, 255),
        )  # fmt: skip
        uow.commit()


def enrolled(uow: UnitOfWork, customer: str) -> bool:
    """Whether the customer has an agent that is not revoked: only then does it offer On Prem
    AD via agent (a request with no agent to run it would wait for nothing)."""
    return any(a.revoked_at is None for a in uow.agents.for_customer(customer))


def offered(uow: UnitOfWork, customer: str) -> list[str]:
    """The identity providers the customer offers in the form and in ``identity_providers``."""
    kinds = set(uow.connections.kinds(customer))
    if AGENT_KIND in kinds and not enrolled(uow, customer):
        kinds.discard(AGENT_KIND)
    return sorted(kinds)
