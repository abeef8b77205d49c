"""SQLAlchemy 2 tables. Every timestamp column is timezone-aware UTC (see ``UtcDateTime``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes; SQLite keeps no zone, so reads are re-tagged as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[str]: JSON}


class CustomerRow(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    psa_company_id: Mapped[str] = mapped_column(String(64))
    domain_prefix: Mapped[str] = mapped_column(String(64))
    max_duration_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The approval policy; NULL: the defaults (no approval; 1 approval within 60 minutes).
    approval_required: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    approvals_needed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    approval_timeout_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime]


class ConnectionRow(Base):
    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("customer_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]]
    secret_sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class PsaConfigRow(Base):
    """The MSP's one PSA (a single row, id 1)."""

    __tablename__ = "psa_config"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]]
    secret_sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class SharedAppRow(Base):
    """The MSP's app registrations every customer connection may share, one per kind
    ("m365-app": the multi-tenant Entra app)."""

    __tablename__ = "shared_apps"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[dict[str, Any]]
    secret_sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class GrantRow(Base):
    __tablename__ = "grants"
    __table_args__ = (
        Index("ix_grants_due", "state", "next_attempt_at"),
        Index("ix_grants_expiry", "state", "expires_at"),
        Index("ix_grants_owner", "requester", "customer", "identity_provider"),
        Index("ix_grants_approval", "state", "approval_expires_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    customer: Mapped[str] = mapped_column(String(64))
    identity_provider: Mapped[str] = mapped_column(String(8))
    ticket_id: Mapped[str] = mapped_column(String(64))
    requester: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(256), nullable=True)
    password_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    activated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    account: Mapped[dict[str, Any]]
    steps: Mapped[list[str]]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    revoke_requested_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tenant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    access_missing_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Recorded at request time from the customer's policy; 0: no approval needed.
    approvals_needed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    approval_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    approvals: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AuditRow(Base):
    """Append-only, hash-chained evidence (``grant_events``)."""

    __tablename__ = "grant_events"
    # Rate limits count events of one kind (by one actor) in a window: one index range each.
    __table_args__ = (
        Index("ix_grant_events_kind_at", "kind", "at"),
        Index("ix_grant_events_kind_actor_at", "kind", "actor", "at"),
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    grant_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    customer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict[str, Any]]
    # The credential that acted ("token:<id>", "session:<handle>"); never a secret.
    credential: Mapped[str | None] = mapped_column(String(80), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """One row holding the chain's tip; locking it serialises appends on any database.

    ``mac`` is the HMAC of (seq, hash, keyed_from) under a key derived from the secret key, so
    the head cannot be moved back after the newest entries were deleted; ``keyed_from`` is the
    first entry whose hash is keyed (entries before it were written by an older version).
    """

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    keyed_from: Mapped[int | None] = mapped_column(Integer, nullable=True)


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(36), index=True)
    customer: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[str] = mapped_column(String(64))
    marker: Mapped[str] = mapped_column(String(120), unique=True)
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12))  # pending | sent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    note_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class NotificationChannelRow(Base):
    """A notification channel (migration 0013). ``sealed`` holds its URL and signing secret."""

    __tablename__ = "notification_channels"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    events: Mapped[list[str]] = mapped_column(JSON)
    customers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(nullable=True)


class NotificationDeliveryRow(Base):
    """One event for one channel, delivered by the worker; ``delivery_id`` is stable across
    retries (the receiver's dedup key)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_notification_deliveries_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)
    channel_id: Mapped[str] = mapped_column(String(36), index=True)
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(12))  # pending | sent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


DISABLED_MARK = "!"


# The password column of a user that signs in only through OpenID Connect (migration 0015):
# not an argon2 hash, so no password verifies against it.
NO_PASSWORD = "*oidc"  # noqa: S105 - a marker, not a password


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # The argon2id hash; a leading DISABLED_MARK locks the account, as ``passwd -l`` does: no
    # password verifies against it, and token and session look-ups skip such users.
    password_hash: Mapped[str] = mapped_column(Text)
    # None: every customer; else the slugs this user may use.
    customers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime]
    # The second factor (migration 0012); all NULL: not enrolled. The secret is sealed, the
    # recovery codes are keyed hashes; totp_last_step refuses a code used before.
    totp_secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    totp_recovery: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Created by an OpenID Connect sign-in (migration 0015): the issuer and the ID token's
    # ``sub``, which a later sign-in under this name must match. NULL: a local account.
    oidc_issuer: Mapped[str | None] = mapped_column(String(500), nullable=True)
    oidc_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    # None: never expires (tokens made before migration 0004).
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WebSessionRow(Base):
    """A signed-in browser. ``id_hash`` is the keyed hash (HMAC) of the cookie value, never it."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SignInFailureRow(Base):
    """One counted failed sign-in, kept only as long as the lockout window (the audit trail
    keeps the evidence); counted per username, per client address and in all."""

    __tablename__ = "signin_failures"
    __table_args__ = (
        Index("ix_signin_failures_username_at", "username", "at"),
        Index("ix_signin_failures_client_at", "client", "at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(200))
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(index=True)


class SignInLockoutRow(Base):
    """When a sign-in lockout was last reported (audited), so each is reported once a window."""

    __tablename__ = "signin_lockouts"
    __table_args__ = (Index("ix_signin_lockouts_scope_subject_at", "scope", "subject", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # username | client | global
    subject: Mapped[str] = mapped_column(String(200))  # the username or address; "" for global
    at: Mapped[datetime] = mapped_column(index=True)


class ReconcileRunRow(Base):
    """One drift reconciliation per customer and identity provider: a lease and when it ran."""

    __tablename__ = "reconcile_runs"
    customer: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WorkerHeartbeatRow(Base):
    """The last sign of life of each worker process (``jitadmin_worker_heartbeat_...``)."""

    __tablename__ = "worker_heartbeats"
    worker: Mapped[str] = mapped_column(String(100), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(index=True)


class AgentRow(Base):
    """An on-prem agent (migration 0014): only its public key, never a private one."""

    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(40), default="")
    tenant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    domain: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    last_seen_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AgentEnrollmentRow(Base):
    """A one-time enrollment code, stored as its keyed hash like API tokens."""

    __tablename__ = "agent_enrollments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(128), unique=True)
    customer: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AgentJobRow(Base):
    """One step of a grant handed to a customer's agents, leased like the worker's grants."""

    __tablename__ = "agent_jobs"
    __table_args__ = (
        Index("ix_agent_jobs_queue", "customer", "state"),
        Index("ix_agent_jobs_grant", "grant_id", "kind"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer: Mapped[str] = mapped_column(String(64))
    grant_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class AgentNonceRow(Base):
    """Nonces of signed agent requests, kept past the allowed clock skew (replay refusal)."""

    __tablename__ = "agent_nonces"
    agent_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)
