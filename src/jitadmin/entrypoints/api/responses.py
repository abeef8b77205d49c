"""What each API operation answers, so ``/openapi.json`` describes it (and a generated client
works). Field names, order and values are those the routes have always returned; times are the
ISO 8601 strings of ``core.clock.iso`` (with an offset), typed as strings in ``date-time`` format.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class CustomerCreated(BaseModel):
    slug: str
    name: str
    psa_company_id: str
    domain_prefix: str
    identity_providers: list[str] = Field(description="identity providers configured for it")


class CustomerOut(BaseModel):
    slug: str
    name: str
    psa_company_id: str
    domain_prefix: str
    max_duration_minutes: int
    identity_providers: list[str] = Field(description="identity providers configured for it")


class CustomerList(BaseModel):
    items: list[CustomerOut]


class ConnectionSaved(BaseModel):
    customer: str
    kind: str
    settings: dict[str, Any] = Field(description="the saved settings without the secrets")


class ConnectionChecked(BaseModel):
    ok: bool
    findings: list[str]


class PsaSaved(BaseModel):
    """The saved PSA settings without the secrets (which names depends on ``kind``)."""

    model_config = ConfigDict(extra="allow")
    kind: str


class PsaChecked(BaseModel):
    ok: bool
    kind: str
    findings: list[str]


class TicketOut(BaseModel):
    id: str
    number: str
    summary: str
    status: str


class TicketList(BaseModel):
    items: list[TicketOut]


class UserCreated(BaseModel):
    """Shown this once: only hashes of the password and token are stored."""

    username: str
    role: str
    password: str
    token: str


class UserOut(BaseModel):
    username: str
    role: str
    customers: list[str] | None = Field(description="null: every customer")
    disabled: bool = Field(description="a disabled user's password, tokens and sessions fail")


class UserList(BaseModel):
    items: list[UserOut]


class ApprovalOut(BaseModel):
    by: str
    at: Timestamp
    comment: str | None


class PolicyOut(BaseModel):
    customer: str
    max_duration_minutes: int
    approval_required: list[str] = Field(description="identity providers needing approval")
    approvals_needed: int
    approval_timeout_minutes: int


class UserDetail(UserOut):
    created_at: Timestamp | None
    sessions: int = Field(description="open web sessions")
    tokens: int = Field(description="API tokens (a disabled user's open nothing)")
    second_factor: bool = Field(description="an authenticator app (TOTP) is set up")
    oidc_issuer: str | None = Field(
        None, description="the OpenID Connect issuer this user signs in through; null: local"
    )


class NotRevoked(BaseModel):
    id: str
    reason: str


class UserUpdated(UserDetail):
    sessions_ended: int
    revoked_grants: list[str] = Field(
        description="grants now on their way to revoked (cancelled if awaiting approval)"
    )
    not_revoked: list[NotRevoked] = Field(description="unfinished grants the revoke refused")


class PasswordReset(BaseModel):
    """Shown this once: only a hash of the password is stored."""

    username: str
    password: str
    sessions_ended: int


class SecondFactorReset(BaseModel):
    username: str
    reset: bool = Field(description="false: the user had no second factor (nothing changed)")


class SessionsEnded(BaseModel):
    username: str
    sessions_ended: int


class GrantOut(BaseModel):
    id: str
    state: str
    customer: str
    identity_provider: str
    ticket_id: str
    requester: str
    reason: str
    username: str | None
    duration_minutes: int
    created_at: Timestamp
    activated_at: Timestamp | None
    expires_at: Timestamp
    revoked_at: Timestamp | None
    attempts: int
    next_attempt_at: Timestamp | None
    last_error: str | None
    approvals_needed: int = Field(description="0: no approval was needed")
    approval_expires_at: Timestamp | None = Field(
        description="while pending_approval: when the request expires without a decision"
    )
    approvals: list[ApprovalOut]
    credential: str = Field(
        description="what the technician signs in with: password, or temporary_access_pass "
        "(POST /grants/{id}/temporary-access-pass shows it once)"
    )
    credential_notice: str | None = Field(
        description="why a Temporary Access Pass was asked for but the password is used"
    )
    role_assignment: str | None = Field(
        default=None,
        description="M365: pim (Global Administrator with a tenant-side end, PIM) or direct",
    )
    role_notice: str | None = Field(
        default=None, description="why a PIM assignment was asked for but a plain one was made"
    )


class GrantRequested(GrantOut):
    password: str = Field(description="the temporary account's password, shown only here")


class GrantList(BaseModel):
    items: list[GrantOut]


class EventOut(BaseModel):
    kind: str
    actor: str
    at: Timestamp
    grant_id: str | None
    customer: str | None
    data: dict[str, Any]
    credential: str | None = Field(description='which credential acted ("token:<id>", ...)')


class GrantDetail(GrantOut):
    events: list[EventOut]


class _Sequenced(BaseModel):
    seq: int


class AuditEntry(EventOut, _Sequenced):
    """An entry of the hash-chained trail: ``hash`` covers it and ``prev_hash``."""

    prev_hash: str
    hash: str


class AuditList(BaseModel):
    items: list[AuditEntry]


class Revealed(BaseModel):
    id: str
    password: str = Field(
        description="the account's credential: its password, or the Temporary Access Pass "
        "that took its place (see the grant's credential)"
    )


class TemporaryAccessPass(BaseModel):
    """Shown to the requester once; after that only an admin's reveal shows it."""

    id: str
    temporary_access_pass: str


class TokenOut(BaseModel):
    id: int
    username: str
    created_at: Timestamp
    expires_at: Timestamp | None
    hint: str = Field(description="the first characters of the token's hash")


class TokenList(BaseModel):
    items: list[TokenOut]


class TokenIssued(BaseModel):
    username: str
    token: str = Field(description="shown this once; only its hash is stored")


class TokenRevoked(BaseModel):
    id: int
    username: str
    revoked: bool


class Health(BaseModel):
    status: str
    version: str


class FieldRule(BaseModel):
    field: str
    rule: str


class ChannelOut(BaseModel):
    """A notification channel; its URL and secret are write-only (only the host is shown)."""

    id: str
    kind: str
    host: str = Field(description="the URL's host; the URL itself is sealed")
    to: list[str]
    events: list[str]
    customers: list[str] | None = Field(description="None: every customer")
    created_at: Timestamp
    created_by: str
    failing: bool = Field(description="several deliveries in a row have failed")
    consecutive_failures: int
    last_error: str | None
    last_attempt_at: Timestamp | None
    last_success_at: Timestamp | None
    backlog: int = Field(description="notifications not yet delivered")


class ChannelList(BaseModel):
    items: list[ChannelOut]


class ChannelDeleted(BaseModel):
    id: str
    deleted: bool


class ChannelTested(BaseModel):
    ok: bool
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldRule] | None = Field(default=None, description="on 422: each bad field")
    existing_grant: str | None = Field(default=None, description="on 409: the grant in the way")


PROBLEM = "application/problem+json"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: these statuses answer with a ``Problem``."""
    return {status: {"model": Problem, "description": "problem+json"} for status in statuses}


def problems_as_problem_json(schema: dict[str, Any]) -> dict[str, Any]:
    """Error answers are ``application/problem+json``, not the ``application/json`` FastAPI
    files their model under; idempotent, so it may run on the cached schema again."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                declared = [c for c in response.get("content", {}).values() if "schema" in c]
                if str(status)[0] in "45" and declared:
                    response["content"] = {PROBLEM: declared[0]}
    return schema


def describe_problems(api: FastAPI) -> None:
    """Have ``/openapi.json`` file every error answer under ``application/problem+json``."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        return problems_as_problem_json(build())

    api.openapi = openapi  # type: ignore[method-assign]
