"""The ports: what services need from the outside world, as Protocols and plain dataclasses.

Adapters (``jitadmin.adapters``) and the database (``jitadmin.db``) implement these; services
depend only on this module and on ``jitadmin.core``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from jitadmin.core.egress import IpAddress
from jitadmin.core.errors import MisconfiguredError
from jitadmin.core.events import AuditEvent, AuditHead
from jitadmin.core.grant import Grant
from jitadmin.core.policy import (
    DEFAULT_APPROVAL_TIMEOUT_MINUTES,
    DEFAULT_APPROVALS_NEEDED,
    DEFAULT_MAX_DURATION_MINUTES,
    ApprovalPolicy,
)

# --- time and secrets -------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC now."""
        ...


class SecretBox(Protocol):
    """Authenticated encryption for secrets at rest; ``context`` binds a ciphertext to its row."""

    def seal(self, plaintext: str, context: str) -> str: ...

    def open(self, sealed: str, context: str) -> str: ...

    def needs_rotation(self, sealed: str) -> bool:
        """True when ``sealed`` was not sealed under the current primary key."""
        ...

    def mac_keys(self, purpose: str) -> tuple[bytes, ...]:
        """HMAC keys derived for one use (primary key's first, then previous keys')."""
        ...

    def digests(self, purpose: str, value: str) -> tuple[str, ...]:
        """Keyed hashes of ``value`` for one use; the first is the one to store."""
        ...


# --- identity providers -----------------------------------------------------------------

# Called by an adapter after each completed step, with data to merge into the grant's
# ``account`` record (object ids...). The recorder commits at once, so progress survives a crash.
ProgressRecorder = Callable[[str, dict[str, Any]], None]
# The step an adapter records when the account it created no longer carries what jitadmin gave
# it (tag, name): reported as tampering (audit, ticket note, metric), never a reason to stop.
# Its data: ``{"tampered_fields": "employeeType,displayName"}``.
TAMPERING_STEP = "tampering_detected"


@dataclass(frozen=True)
class AccessSpec:
    grant_id: str
    requester: str
    password: str
    expires_at: datetime
    # What earlier attempts recorded (e.g. ``{"user_id": ...}``); empty on the first attempt.
    account: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AccessResult:
    username: str
    account: dict[str, Any]
    # A credential the target made for this grant (M365's Temporary Access Pass), shown to the
    # requester once and sealed like the password; never part of ``account``.
    temporary_access_pass: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RevokeSpec:
    grant_id: str
    requester: str
    username: str | None
    account: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ManagedAccount:
    """An account in a tenant or domain that carries jitadmin's tag (for the drift reconciler).

    ``account`` holds what a ``RevokeSpec`` needs to find exactly this object again.
    """

    username: str
    object_id: str
    grant_id: str | None  # M365: one account per grant, named after it
    requester: str | None  # AD: one tech account per requester
    enabled: bool
    holds_admin: bool
    account: Mapping[str, Any] = field(default_factory=dict)
    # False: found as a member of the admin role, without jitadmin's tag; the reconciler acts
    # on it only when the ledger recorded its object id.
    tagged: bool = True


class IdentityProvider(Protocol):
    """Grants and takes away admin rights in one customer tenant or domain.

    Every method is idempotent: "already so" counts as success, so a retry after a crash at
    any point converges. ``revoke`` returns only after reading the target back and seeing the
    access gone; otherwise it raises.
    """

    kind: str

    def planned_username(self, grant_id: str, requester: str) -> str: ...

    def grant(self, spec: AccessSpec, record: ProgressRecorder) -> AccessResult: ...

    def revoke(self, spec: RevokeSpec, record: ProgressRecorder) -> None: ...

    def extend(self, spec: AccessSpec) -> None:
        """Move any expiry the target enforces itself (AD ``accountExpires``) to the new end."""
        ...

    def check(self) -> list[str]:
        """Test the connection; returns human-readable findings, raises on failure."""
        ...

    def tenant_id(self) -> str:
        """The immutable id of the tenant or domain this connection reaches (M365: the
        directory's tenant GUID, AD: the domain SID); raises when it cannot be read."""
        ...

    def list_managed(self) -> list[ManagedAccount]:
        """Every account tagged as jitadmin's, with whether it holds admin rights now."""
        ...


# --- ticket systems ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    id: str
    number: str
    summary: str
    status: str
    is_closed: bool
    company_id: str


class TicketSystem(Protocol):
    kind: str

    def list_open_tickets(self, company_id: str) -> list[Ticket]: ...

    def get_ticket(self, ticket_id: str) -> Ticket:
        """Raises ``AdapterNotFoundError`` for an unknown ticket."""
        ...

    def find_note(self, ticket_id: str, marker: str) -> str | None:
        """The id of a note on the ticket whose text contains ``marker``, if any."""
        ...

    def add_note(self, ticket_id: str, text: str) -> str:
        """Post an internal note; returns the new note's id. Not idempotent by itself."""
        ...

    def check(self) -> list[str]:
        """Test the connection; returns human-readable findings, raises on failure."""
        ...


# --- observability --------------------------------------------------------------------


class Metrics(Protocol):
    """What services report for monitoring; the composition root decides where it goes."""

    def revocation_completed(self, identity_provider: str, lag_s: float) -> None: ...
    def connector_error(self, connector: str, kind: str) -> None: ...
    def drift(self, kind: str) -> None: ...
    def signin_throttled(self, scope: str) -> None:
        """A sign-in refused, unchecked and unrecorded, because ``scope`` is locked."""
        ...

    def tampering(self, identity_provider: str) -> None: ...

    def security_alert(self, kind: str) -> None:
        """Something that looks like abuse was stopped (e.g. the installation's reveal limit)."""
        ...


class NoMetrics:
    def revocation_completed(self, identity_provider: str, lag_s: float) -> None:
        pass

    def connector_error(self, connector: str, kind: str) -> None:
        pass

    def drift(self, kind: str) -> None:
        pass

    def signin_throttled(self, scope: str) -> None:
        pass

    def tampering(self, identity_provider: str) -> None:
        pass

    def security_alert(self, kind: str) -> None:
        pass


# --- persistence ------------------------------------------------------------------------
# Implemented by ``jitadmin.db``; one UnitOfWork is one database transaction.


@dataclass(frozen=True)
class Customer:
    slug: str
    name: str
    psa_company_id: str
    domain_prefix: str
    max_duration_minutes: int | None = None  # None: DEFAULT_MAX_DURATION_MINUTES
    # The approval policy (GET/PUT /customers/{slug}/policy); by default no approval.
    approval_required: tuple[str, ...] = ()
    approvals_needed: int = DEFAULT_APPROVALS_NEEDED
    approval_timeout_minutes: int = DEFAULT_APPROVAL_TIMEOUT_MINUTES

    @property
    def policy(self) -> ApprovalPolicy:
        return ApprovalPolicy(
            self.max_duration_minutes or DEFAULT_MAX_DURATION_MINUTES,
            self.approval_required,
            self.approvals_needed,
            self.approval_timeout_minutes,
        )


@dataclass(frozen=True)
class ConnectionRecord:
    """A customer's identity-provider connection, or the MSP's PSA (customer ``None``).

    ``settings`` is what may be shown; ``secret_sealed`` is the SecretBox ciphertext of the
    write-only credentials.
    """

    kind: str
    settings: dict[str, Any]
    secret_sealed: str
    customer: str | None = None
    # The MSP's shared app registration (``SharedApp``) this connection takes its client id
    # and credential from, when its own settings leave them out.
    app: ConnectionRecord | None = None


@dataclass(frozen=True)
class User:
    username: str
    role: str
    customers: tuple[str, ...] | None = None  # None: every customer
    # A disabled user's password, tokens and sessions open nothing (services/users.py).
    disabled: bool = False

    def may_use(self, customer: str) -> bool:
        return self.customers is None or customer in self.customers

    def covers(self, scope: tuple[str, ...] | None) -> bool:
        """Whether ``scope`` (another user's customers, None = every customer) lies inside
        this user's own: the rule for which users, tokens and settings an admin manages."""
        if self.customers is None:
            return True
        return scope is not None and set(scope) <= set(self.customers)


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    grant_id: str
    customer: str
    ticket_id: str
    marker: str
    text: str
    state: str
    attempts: int
    note_id: str | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class NotificationChannel:
    """Where notifications go. ``sealed`` holds the URL and the signing secret (encrypted:
    an incoming-webhook URL is itself a credential); ``host`` is what may be shown."""

    id: str
    kind: str  # webhook | slack | teams | email
    host: str
    recipients: tuple[str, ...]
    events: tuple[str, ...]
    customers: tuple[str, ...] | None  # None: every customer
    sealed: str
    created_at: datetime
    created_by: str
    consecutive_failures: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None


@dataclass(frozen=True)
class NotificationDelivery:
    """One event for one channel; ``delivery_id`` stays the same across retries (dedup key)."""

    id: int
    delivery_id: str
    channel_id: str
    event: str
    payload: dict[str, Any]
    state: str  # pending | sent
    attempts: int
    last_error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class StoredAuditEvent:
    seq: int
    kind: str
    actor: str
    at: datetime
    grant_id: str | None
    customer: str | None
    data: dict[str, Any]
    hash: str
    prev_hash: str = ""
    credential: str | None = None  # which credential acted ("token:<id>", "session:<handle>")


@dataclass(frozen=True)
class AuditQuery:
    """Filters for reading the trail; ``customers`` None = every customer's events."""

    grant_id: str | None = None
    customer: str | None = None
    actor: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    customers: tuple[str, ...] | None = None
    after_seq: int = 0


@dataclass(frozen=True)
class RecentCount:
    """How many rows matched in a window, and when the oldest of them happened (to say when
    the window frees up)."""

    count: int
    oldest: datetime | None = None


@dataclass(frozen=True)
class SignInFailureCounts:
    username: RecentCount
    client: RecentCount  # zero when the client address is unknown
    everyone: RecentCount


@dataclass(frozen=True)
class SealedValue:
    """One sealed column value: where it lives (``column``, ``key``) and the row's identity."""

    column: str  # "connection" | "psa" | "grant_password" | "totp_secret"
    key: str
    customer: str | None
    kind: str
    sealed: str
    settings: dict[str, Any] | None = None  # a connection's plaintext settings (its AAD)


class SealedStore(Protocol):
    """Every sealed value at rest, read in keyset batches, for key rotation."""

    def batch(self, column: str, after: str | None, limit: int) -> list[SealedValue]: ...
    def replace(self, value: SealedValue, new_sealed: str) -> bool:
        """Write ``new_sealed`` only if the row still holds ``value.sealed``."""
        ...


class CustomerRepo(Protocol):
    def get(self, slug: str) -> Customer | None: ...
    def all(self) -> list[Customer]: ...
    def add(self, customer: Customer, at: datetime) -> None: ...
    def set_policy(self, slug: str, policy: ApprovalPolicy) -> None: ...


class ConnectionRepo(Protocol):
    def get(self, customer: str, kind: str) -> ConnectionRecord | None: ...
    def kinds(self, customer: str) -> set[str]: ...
    def put(self, record: ConnectionRecord, at: datetime) -> None: ...
    def get_psa(self) -> ConnectionRecord | None: ...
    def put_psa(self, record: ConnectionRecord, at: datetime) -> None: ...
    def get_app(self, kind: str) -> ConnectionRecord | None:
        """The MSP's shared app registration of that kind ("m365-app"), customer ``None``."""
        ...

    def put_app(self, record: ConnectionRecord, at: datetime) -> None: ...


class GrantRepo(Protocol):
    def add(self, grant: Grant, password_sealed: str | None) -> None: ...
    def get(self, grant_id: str, *, lock: bool = False) -> Grant | None:
        """``lock``: hold the row until commit (read-modify-write on PostgreSQL)."""
        ...

    def lock_owner(self, requester: str, customer: str, identity_provider: str) -> None:
        """Serialise grant requests of one requester until commit (one live grant per customer
        and identity provider, and the cap on how many customers at once)."""
        ...

    def save(self, grant: Grant) -> None: ...
    def find(
        self,
        *,
        state: str | None = None,
        customer: str | None = None,
        requester: str | None = None,
        limit: int = 500,
    ) -> list[Grant]: ...
    def find_live(self, requester: str, customer: str, identity_provider: str) -> Grant | None:
        """The requester's grant on this customer and identity provider in a ``LIVE`` state."""
        ...

    def live_customers(self, requester: str) -> set[str]:
        """The customers in which ``requester`` holds a grant in a ``LIVE`` state."""
        ...

    def find_by_object_ids(
        self, customer: str, identity_provider: str, object_ids: list[str]
    ) -> list[Grant]:
        """Grants whose recorded account object id is one of ``object_ids``, newest first."""
        ...

    def password_sealed(self, grant_id: str) -> str | None: ...
    def set_password_sealed(self, grant_id: str, sealed: str | None) -> None: ...
    # Worker claims (leases): a dead worker's claims come back when the lease runs out.
    def due(
        self, now: datetime, limit: int, per_customer: int | None = None
    ) -> list[tuple[str, str]]:
        """Due grants as (id, customer), at most ``per_customer`` of each customer, taken in
        turns: every customer's oldest due grant before any customer's second one."""
        ...

    def defer(self, grant_id: str, error: str, next_attempt_at: datetime) -> None:
        """Count a failed attempt and set the next one, by plain SQL on the row: the fallback
        when the normal failure path could not even load the grant."""
        ...

    def postpone(self, grant_id: str, next_attempt_at: datetime) -> None:
        """Set the next attempt without counting one (waiting on an agent is no failure)."""
        ...

    def claim_many(
        self, grant_ids: list[str], worker: str, now: datetime, lease_until: datetime
    ) -> set[str]: ...
    def record_progress(self, grant_id: str, step: str, data: dict[str, Any]) -> str | None: ...
    def renew(self, grant_ids: list[str], worker: str, lease_until: datetime) -> None: ...
    def release(self, grant_id: str, worker: str) -> None: ...
    def next_deadline(self, now: datetime) -> datetime | None: ...
    def count_by_state(self) -> dict[str, int]: ...


class AuditLog(Protocol):
    def append(self, event: AuditEvent) -> None: ...
    def entries(
        self, *, grant_id: str | None = None, limit: int = 500
    ) -> list[StoredAuditEvent]: ...
    def search(self, query: AuditQuery, limit: int = 500) -> list[StoredAuditEvent]:
        """Matching events, the newest ``limit`` of them, oldest first."""
        ...

    def export(self, query: AuditQuery, limit: int) -> list[StoredAuditEvent]:
        """Matching events after ``query.after_seq``, oldest first (for paging exports)."""
        ...

    def count(self, query: AuditQuery) -> RecentCount:
        """How many events match, however many (counted in the database), and the oldest's time."""
        ...

    def verify(self) -> tuple[int, int | None]:
        """(entries checked, seq of the first bad entry or None)."""
        ...

    def head(self) -> AuditHead | None:
        """The authenticated tip (None: nothing recorded); ``AuditTamperedError`` if forged."""
        ...

    def hash_at(self, seq: int) -> str | None:
        """The stored hash of entry ``seq`` (None: no such entry)."""
        ...

    def adopt_legacy_head(self) -> AuditHead | None:
        """Key the head of a chain written before keying (one-time, at upgrade); None: nothing."""
        ...


class Outbox(Protocol):
    def enqueue(self, grant: Grant, marker: str, text: str, at: datetime) -> None: ...
    def get(self, message_id: int) -> OutboxMessage | None: ...
    def for_grant(self, grant_id: str) -> list[OutboxMessage]: ...
    def due(
        self, now: datetime, limit: int, per_customer: int | None = None
    ) -> list[tuple[int, str]]: ...
    def claim(self, message_id: int, worker: str, now: datetime, lease_until: datetime) -> bool: ...
    def claim_many(
        self, message_ids: list[int], worker: str, now: datetime, lease_until: datetime
    ) -> set[int]: ...
    def mark_sent(self, message_id: int, note_id: str, at: datetime) -> None: ...
    def mark_retry(self, message_id: int, error: str, next_attempt_at: datetime) -> None: ...
    def next_deadline(self, now: datetime) -> datetime | None: ...
    def release(self, message_id: int, worker: str) -> None: ...
    def pending_count(self) -> int: ...


class NotificationRepo(Protocol):
    def add_channel(self, channel: NotificationChannel) -> None: ...
    def channel(self, channel_id: str) -> NotificationChannel | None: ...
    def channels(self) -> list[NotificationChannel]: ...
    def delete_channel(self, channel_id: str) -> bool:
        """Delete the channel and its undelivered notifications; False when there is none."""
        ...

    def backlog(self) -> dict[str, int]:
        """Undelivered notifications per channel id."""
        ...

    def enqueue(
        self, channel_id: str, delivery_id: str, event: str, payload: dict[str, Any], at: datetime
    ) -> None: ...
    def get(self, delivery_pk: int) -> NotificationDelivery | None: ...
    def for_channel(self, channel_id: str) -> list[NotificationDelivery]: ...
    def due(self, now: datetime, limit: int) -> list[int]: ...
    def claim(
        self, delivery_pk: int, worker: str, now: datetime, lease_until: datetime
    ) -> bool: ...
    def release(self, delivery_pk: int, worker: str) -> None: ...
    def mark_sent(self, delivery_pk: int, at: datetime) -> None: ...
    def mark_retry(self, delivery_pk: int, error: str, next_attempt_at: datetime) -> None: ...
    def record_attempt(self, channel_id: str, at: datetime, error: str | None) -> None:
        """The channel's health: a success resets its failure count, an error adds one."""
        ...

    def next_deadline(self, now: datetime) -> datetime | None: ...


class UserRepo(Protocol):
    def add(
        self, user: User, password_hash: str, token_hash: str, at: datetime,
        token_expires_at: datetime | None = None,
    ) -> None: ...  # fmt: skip
    def get(self, username: str) -> User | None: ...
    def by_token_hash(
        self, token_hash: str, now: datetime | None = None
    ) -> tuple[User, int] | None:
        """The token's user and the token's id, unless it is unknown or expired at ``now``."""
        ...

    def all(self) -> list[User]: ...
    def update(self, user: User) -> None:
        """Store ``user``'s role, customers and disabled flag (the username names the row)."""
        ...

    def set_password_hash(self, username: str, password_hash: str) -> None: ...
    def created_at(self, username: str) -> datetime | None: ...
    # OpenID Connect users (services/oidc_signin.py): created without password or API token,
    # bound to the issuer and the ID token's ``sub``.
    def add_external(self, user: User, issuer: str, subject: str, at: datetime) -> None:
        """ConflictError when a concurrent transaction created the name or identity first."""
        ...

    def external_identity(self, username: str) -> tuple[str, str] | None:
        """(issuer, subject) of a user created by an OIDC sign-in; None for a local account."""
        ...

    def by_external(self, issuer: str, subject: str) -> User | None: ...
    def named_alike(self, username: str) -> list[tuple[str, tuple[str, str] | None]]:
        """Every username equal to ``username`` but for case (casefolded), with its
        ``external_identity``: the OIDC guards compare names as AD's ownership check does."""
        ...


@dataclass(frozen=True)
class SecondFactor:
    """A user's TOTP enrolment as stored: the sealed secret, when the enrolment was confirmed
    (None: started, not yet confirmed), the last accepted time step and the keyed hashes of
    the recovery codes not yet used."""

    secret_sealed: str
    confirmed_at: datetime | None = None
    last_step: int | None = None
    recovery_hashes: tuple[str, ...] = ()


class SecondFactorRepo(Protocol):
    def get(self, username: str, *, lock: bool = False) -> SecondFactor | None: ...
    def put(self, username: str, factor: SecondFactor | None) -> None:
        """Store the enrolment (None: remove it)."""
        ...

    def use_step(self, username: str, step: int) -> bool:
        """Record ``step`` as used, only if it is later than the last one used (atomic)."""
        ...


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser. Only a hash of the cookie's random session id is ever stored."""

    id_hash: str
    username: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime  # the absolute end; the idle end is last_seen_at + the idle limit


@dataclass(frozen=True)
class ApiToken:
    id: int
    username: str
    created_at: datetime
    hint: str  # the first characters of the token's hash, to tell tokens apart
    expires_at: datetime | None = None


class WebSessionRepo(Protocol):
    def add(self, session: WebSession) -> None: ...
    def get(self, id_hash: str) -> WebSession | None: ...
    def touch(self, id_hash: str, at: datetime) -> None: ...
    def delete(self, id_hash: str) -> None: ...
    def delete_expired(self, now: datetime, idle_since: datetime) -> int: ...
    def delete_for_user(self, username: str) -> int:
        """End every session of ``username``; how many there were."""
        ...

    def count_for_user(self, username: str) -> int: ...
    # Sign-in is the only reader of the argon2id hashes, so they are read here.
    def password_hash(self, username: str) -> str | None: ...


class ApiTokenRepo(Protocol):
    def all(self) -> list[ApiToken]: ...
    def add(
        self, username: str, token_hash: str, at: datetime, expires_at: datetime | None = None
    ) -> int: ...
    def delete(self, token_id: int) -> ApiToken | None: ...


class SignInFailureRepo(Protocol):
    """Counted failed sign-ins, kept only for the lockout window (rate limits read them)."""

    def counts(
        self, username: str, client: str, since: datetime, *, lock: bool = False
    ) -> SignInFailureCounts:
        """Failures since ``since`` of this username, from this client and in all.

        ``lock``: until commit, no other transaction records a failure (count-then-add)."""
        ...

    def add(self, username: str, client: str, at: datetime) -> None: ...
    def lockout_reported(self, scope: str, subject: str, since: datetime) -> bool: ...
    def report_lockout(self, scope: str, subject: str, at: datetime) -> None: ...
    def prune(self, before: datetime) -> None:
        """Forget failures and lockout reports older than ``before`` (the audit keeps them)."""
        ...


class RuntimeRepo(Protocol):
    """Coordination rows of the worker processes: reconciler leases and heartbeats."""

    def claim_reconcile(
        self,
        customer: str,
        kind: str,
        worker: str,
        now: datetime,
        lease_until: datetime,
        not_run_since: datetime,
    ) -> bool:
        """Take the lease on one customer's reconciliation unless it ran after ``not_run_since``
        or another worker holds it."""
        ...

    def finish_reconcile(self, customer: str, kind: str, worker: str, at: datetime) -> None: ...
    def heartbeat(self, worker: str, at: datetime) -> None: ...
    def heartbeats(self, since: datetime) -> dict[str, datetime]: ...
    def overdue_revocations(self, before: datetime) -> int:
        """Grants that should have been revoked before ``before`` and are not yet."""
        ...


@dataclass(frozen=True)
class Agent:
    """An on-prem agent enrolled for one customer; only its Ed25519 public key is stored."""

    id: str
    customer: str
    name: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    created_at: datetime
    created_by: str
    version: str = ""
    # What the agent reported of its domain (the SID grants are pinned to, and its DNS name).
    tenant_id: str | None = None
    domain: str | None = None
    last_seen_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class AgentJob:
    """One step of a grant handed to the customer's agents. ``sealed`` holds what must not
    rest in plain text (the one-time password); ``result`` is the agent's answer with its
    read-back evidence."""

    id: str
    customer: str
    grant_id: str
    kind: str
    payload: dict[str, Any]
    state: str
    created_at: datetime
    sealed: str | None = field(default=None, repr=False)
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    result: dict[str, Any] | None = None
    finished_at: datetime | None = None
    finished_by: str | None = None


class AgentRepo(Protocol):
    def add_enrollment(
        self, code_hash: str, customer: str, created_by: str, at: datetime, expires_at: datetime
    ) -> None: ...
    def use_enrollment(self, code_hashes: Sequence[str], at: datetime) -> str | None:
        """Mark the unused, unexpired code used (atomically); its customer, or None."""
        ...

    def add(self, agent: Agent) -> None: ...
    def get(self, agent_id: str) -> Agent | None: ...
    def for_customer(self, customer: str) -> list[Agent]: ...
    def all(self) -> list[Agent]: ...
    def seen(
        self, agent_id: str, at: datetime, version: str | None = None,
        tenant_id: str | None = None, domain: str | None = None,
    ) -> None: ...  # fmt: skip
    def revoke(self, agent_id: str, at: datetime) -> bool: ...
    def use_nonce(self, agent_id: str, nonce: str, at: datetime) -> bool:
        """Remember ``nonce`` for this agent; False when it was seen before (a replay)."""
        ...

    def prune_nonces(self, before: datetime) -> None: ...
    def add_job(self, job: AgentJob) -> None: ...
    def job(self, job_id: str) -> AgentJob | None: ...
    def current_job(self, grant_id: str, kind: str) -> AgentJob | None:
        """The grant's latest job of ``kind`` that is not retired."""
        ...

    def jobs_for(self, grant_id: str) -> list[AgentJob]: ...
    def lease(
        self, customer: str, agent_id: str, now: datetime, lease_until: datetime
    ) -> AgentJob | None:
        """Take the customer's oldest job that is pending or whose lease lapsed: a revoke only
        while no other job of its grant is leased live to another agent, a grant or extend job
        only while no revoke of its grant is queued."""
        ...

    def renew(self, job_id: str, agent_id: str, lease_until: datetime) -> bool:
        """False when the job is not (or no longer) leased to this agent, or gives access
        while a revoke of its grant is queued."""
        ...

    def finish(
        self, job_id: str, agent_id: str, state: str, result: dict[str, Any], at: datetime,
        *, unleased: bool = False,
    ) -> bool:  # fmt: skip
        """Store the result if the job is leased to this agent (or, ``unleased``, pending);
        False otherwise: finished already, or taken over by another agent."""
        ...

    def retire(self, job_id: str) -> None: ...
    def retire_pending(self, grant_id: str, kinds: Sequence[str]) -> int:
        """Retire the grant's jobs of ``kinds`` that no agent has taken yet."""
        ...

    def release_agent(self, agent_id: str) -> None:
        """Put the jobs leased to this (revoked) agent back in the queue."""
        ...

    def backlog(self) -> dict[str, int]:
        """Unfinished jobs per customer."""
        ...


class AgentJobQueue(Protocol):
    """What the agent-backed identity provider needs from the server: its jobs, and what the
    customer's agents reported. Implemented by ``services.agents``."""

    def submit(
        self, customer: str, grant_id: str, kind: str, payload: dict[str, Any],
        secret: str | None = None,
    ) -> AgentJob:  # fmt: skip
        """The grant's current job of ``kind``; a new pending one when there is none."""
        ...

    def retire(self, job_id: str) -> None:
        """A failed job was taken note of: the next attempt hands out a new one."""
        ...

    def domain(self, customer: str) -> tuple[str | None, bool]:
        """(the domain SID the customer's agents reported, whether one of them is online)."""
        ...


class UnitOfWork(Protocol):
    @property
    def customers(self) -> CustomerRepo: ...
    @property
    def connections(self) -> ConnectionRepo: ...
    @property
    def grants(self) -> GrantRepo: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def users(self) -> UserRepo: ...
    @property
    def web_sessions(self) -> WebSessionRepo: ...
    @property
    def second_factors(self) -> SecondFactorRepo: ...
    @property
    def api_tokens(self) -> ApiTokenRepo: ...
    @property
    def signin_failures(self) -> SignInFailureRepo: ...
    @property
    def runtime(self) -> RuntimeRepo: ...
    @property
    def sealed(self) -> SealedStore: ...
    @property
    def notifications(self) -> NotificationRepo: ...
    @property
    def agents(self) -> AgentRepo: ...

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc: object) -> None: ...
    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, credential: str | None = None) -> UnitOfWork:
        """A new unit of work; ``credential`` is stamped on each audit event naming none."""
        ...


# --- adapter factories (implemented by wiring) -------------------------------------------


class IdentityProviderFactory(Protocol):
    def __call__(
        self, customer: Customer, kind: str, settings: dict[str, Any], secrets: dict[str, Any]
    ) -> IdentityProvider: ...


class HostResolver(Protocol):
    def __call__(self, host: str, port: int) -> Sequence[IpAddress]:
        """Every address ``host`` resolves to; ``TransientError`` when it cannot be resolved."""
        ...


def no_resolver(host: str, port: int) -> Sequence[IpAddress]:
    """Resolves nothing: names are judged only when connecting (the default without wiring)."""
    return ()


class NotificationSender(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        """POST ``body`` to ``url``. ``TransientError`` (with ``retry_after_s`` when the
        receiver said) when a retry may succeed, ``RejectedError`` when the receiver refused
        it, ``EgressRefusedError`` when the egress policy forbids the address."""
        ...


class NoNotificationSender:
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        raise MisconfiguredError("no notification sender is configured")


class Mailer(Protocol):
    def send(self, to: Sequence[str], subject: str, text: str) -> None:
        """Send a plain-text mail; ``TransientError`` when a retry may succeed."""
        ...


class NoMailer:
    def send(self, to: Sequence[str], subject: str, text: str) -> None:
        raise MisconfiguredError("email needs an SMTP server (JITADMIN_SMTP_HOST)")


class TicketSystemFactory(Protocol):
    def __call__(
        self, kind: str, settings: dict[str, Any], secrets: dict[str, Any]
    ) -> TicketSystem: ...
