"""API shapes (never ORM objects). Loose types here; the domain rules live in core."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jitadmin.connectors import REGISTRY
from jitadmin.core.clock import iso
from jitadmin.core.connectors import ConnectorFamily
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant
from jitadmin.core.notifications import grant_view
from jitadmin.core.policy import ApprovalPolicy
from jitadmin.ports import StoredAuditEvent
from jitadmin.services.grants import credential_of


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


class PolicyIn(Strict):
    # Each omitted field keeps its current value.
    max_duration_minutes: int | None = None
    approval_required: list[str] | None = Field(
        default=None, description="identity provider kinds whose requests need approval"
    )
    approvals_needed: int | None = None
    approval_timeout_minutes: int | None = None


class ChannelIn(Strict):
    kind: str = Field(description="webhook, slack, teams or email")
    url: str | None = Field(default=None, description="webhook, slack, teams: where to POST")
    to: list[str] | None = Field(default=None, description="email: the recipients")
    secret: str | None = Field(default=None, description="webhook: signs each delivery")
    events: list[str]
    customers: list[str] | None = Field(default=None, description="omitted: every customer")


class ApproveIn(Strict):
    comment: str | None = None


class RejectIn(Strict):
    comment: str | None = Field(default=None, description="required: why the request is refused")


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


# A customer connection's body is its identity provider's settings model (the connector
# registry's); see routes.add_connection_routes.


class PsaIn(BaseModel):
    # Each PSA kind has its own settings (the connector registry's settings models); the
    # service checks them against the kind's model, naming any missing or unknown field.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "description": "The PSA's kind and its settings: "
            + "; ".join(
                f"{s.kind}: {', '.join(s.fields)}"
                for s in REGISTRY.catalog
                if s.family is ConnectorFamily.TICKET_SYSTEM
            )
        },
    )
    kind: str = Field(json_schema_extra={"enum": list(REGISTRY.catalog.ticket_systems)})
    base_url: str


class UserIn(Strict):
    username: str
    role: str
    customers: list[str] | None = None


class UserPatch(Strict):
    """Only the fields given change; ``customers: null`` means every customer."""

    role: str | None = None
    customers: list[str] | None = None
    disabled: bool | None = None
    revoke_grants: bool = False


def grant_out(grant: Grant) -> dict[str, Any]:
    # What a notification says of a grant, plus what only API callers are shown.
    return {
        **grant_view(grant),
        "attempts": grant.attempts,
        "next_attempt_at": iso(grant.next_attempt_at),
        "last_error": grant.shown_error,
        "approvals_needed": grant.approvals_needed,
        "approval_expires_at": iso(grant.approval_expires_at),
        "approvals": [
            {"by": a["by"], "at": a["at"], "comment": a.get("comment")} for a in grant.approvals
        ],
        "credential": credential_of(grant),
        "credential_notice": _text(grant.account.get("credential_notice")),
        "role_assignment": _text(grant.account.get("role_assignment")),
        "role_notice": _text(grant.account.get("role_notice")),
    }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def policy_out(slug: str, policy: ApprovalPolicy) -> dict[str, Any]:
    return {
        "customer": slug,
        "max_duration_minutes": policy.max_duration_minutes,
        "approval_required": list(policy.approval_required),
        "approvals_needed": policy.approvals_needed,
        "approval_timeout_minutes": policy.approval_timeout_minutes,
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
