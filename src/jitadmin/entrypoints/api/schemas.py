"""API shapes (never ORM objects). Loose types here; the domain rules live in core."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jitadmin.core.clock import iso
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant
from jitadmin.ports import StoredAuditEvent


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GrantIn(Strict):
    customer: str = Field(min_length=1, max_length=64)
    identity_provider: str
    ticket_id: str | int
    duration_minutes: int
    reason: str = Field(max_length=2000)
    password: str | None = None


class ExtendIn(Strict):
    minutes: int


class RevealIn(Strict):
    reason: str | None = Field(default=None, max_length=500)


class TokenIn(Strict):
    # Optional: the caller. Naming anyone else is refused (403); nobody mints for others.
    username: str | None = Field(default=None, min_length=1, max_length=200)


class CustomerIn(Strict):
    slug: str
    name: str
    psa_company_id: str | int
    domain_prefix: str | None = None
    max_duration_minutes: int | None = None


class M365ConnectionIn(Strict):
    tenant_id: str
    client_id: str
    client_secret: str
    authority_url: str | None = None
    graph_url: str | None = None
    domain: str | None = None


class AdConnectionIn(Strict):
    url: str
    bind_user: str
    bind_password: str
    ca_pem: str | None = None
    base_dn: str | None = None
    ou: str | None = None


class PsaIn(BaseModel):
    # Credentials differ per PSA kind; the service checks the required names.
    model_config = ConfigDict(extra="allow")
    kind: Literal["connectwise", "autotask", "halopsa"]
    base_url: str


class UserIn(Strict):
    username: str
    role: str
    customers: list[str] | None = None


def grant_out(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "state": grant.state.value,
        "customer": grant.customer,
        "identity_provider": grant.identity_provider,
        "ticket_id": grant.ticket_id,
        "requester": grant.requester,
        "reason": grant.reason,
        "username": grant.username,
        "duration_minutes": grant.duration_minutes,
        "created_at": iso(grant.created_at),
        "activated_at": iso(grant.activated_at),
        "expires_at": iso(grant.expires_at),
        "revoked_at": iso(grant.revoked_at),
        "attempts": grant.attempts,
        "next_attempt_at": iso(grant.next_attempt_at),
        "last_error": grant.shown_error,
    }


def event_out(event: AuditEvent | StoredAuditEvent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": event.kind,
        "actor": event.actor,
        "at": iso(event.at),
        "grant_id": event.grant_id,
        "customer": event.customer,
        "data": event.data,
        "credential": event.credential,
    }
    if isinstance(event, StoredAuditEvent):
        out = {"seq": event.seq, **out, "prev_hash": event.prev_hash, "hash": event.hash}
    return out


def when(value: datetime | None) -> str | None:
    return iso(value)
