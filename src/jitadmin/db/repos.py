"""Repositories for customers, connections, the note outbox and users (grants: grant_repo,
audit: audit_log). Only the db package writes SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jitadmin.core.errors import ConflictError
from jitadmin.core.grant import Grant
from jitadmin.core.policy import (
    DEFAULT_APPROVAL_TIMEOUT_MINUTES,
    DEFAULT_APPROVALS_NEEDED,
    ApprovalPolicy,
)
from jitadmin.db.claims import (
    fair_turns,
    skip_locked,
    unclaimed,
)
from jitadmin.db.tables import (
    DISABLED_MARK,
    NO_PASSWORD,
    ApiTokenRow,
    ConnectionRow,
    CustomerRow,
    OutboxRow,
    PsaConfigRow,
    SharedAppRow,
    UserRow,
    UtcDateTime,
)
from jitadmin.ports import (
    ConnectionRecord,
    Customer,
    OutboxMessage,
    User,
)

_OUTBOX_INSERT = insert(OutboxRow)
# Core selects of whole rows (attributes named as the ORM's): the worker reads the customer
# and its connection for every grant it drives, without an ORM session.
_CUSTOMER = select(*CustomerRow.__table__.c).where(CustomerRow.slug == bindparam("slug"))
_CONNECTION = (
    select(*ConnectionRow.__table__.c)
    .join(CustomerRow, CustomerRow.id == ConnectionRow.customer_id)
    .where(CustomerRow.slug == bindparam("customer"), ConnectionRow.kind == bindparam("kind"))
)
_BY_TOKEN = (
    select(UserRow, ApiTokenRow.id)
    .join(ApiTokenRow, ApiTokenRow.user_id == UserRow.id)
    .where(ApiTokenRow.token_hash == bindparam("token_hash"))
    # A disabled user's tokens stop at once: the next request is a 401.
    .where(~UserRow.password_hash.startswith(DISABLED_MARK, autoescape=True))
)
_BY_TOKEN_NOW = _BY_TOKEN.where(
    or_(
        ApiTokenRow.expires_at.is_(None),
        ApiTokenRow.expires_at > bindparam("now", type_=UtcDateTime),
    )
)


class SqlCustomerRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    @staticmethod
    def _to(row: CustomerRow) -> Customer:
        return Customer(
            slug=row.slug,
            name=row.name,
            psa_company_id=row.psa_company_id,
            domain_prefix=row.domain_prefix,
            max_duration_minutes=row.max_duration_minutes,
            approval_required=tuple(row.approval_required or ()),
            approvals_needed=row.approvals_needed or DEFAULT_APPROVALS_NEEDED,
            approval_timeout_minutes=(
                row.approval_timeout_minutes or DEFAULT_APPROVAL_TIMEOUT_MINUTES
            ),
        )

    def get(self, slug: str) -> Customer | None:
        row = self.s.connection().execute(_CUSTOMER, {"slug": slug}).first()
        return None if row is None else self._to(cast(CustomerRow, row))

    def all(self) -> list[Customer]:
        return [self._to(r) for r in self.s.scalars(select(CustomerRow).order_by(CustomerRow.slug))]

    def add(self, customer: Customer, at: datetime) -> None:
        self.s.add(
            CustomerRow(
                slug=customer.slug,
                name=customer.name,
                psa_company_id=customer.psa_company_id,
                domain_prefix=customer.domain_prefix,
                max_duration_minutes=customer.max_duration_minutes,
                approval_required=list(customer.approval_required) or None,
                approvals_needed=customer.approvals_needed,
                approval_timeout_minutes=customer.approval_timeout_minutes,
                created_at=at,
            )
        )
        self.s.flush()

    def set_policy(self, slug: str, policy: ApprovalPolicy) -> None:
        self.s.execute(
            update(CustomerRow)
            .where(CustomerRow.slug == slug)
            .values(
                max_duration_minutes=policy.max_duration_minutes,
                approval_required=list(policy.approval_required),
                approvals_needed=policy.approvals_needed,
                approval_timeout_minutes=policy.approval_timeout_minutes,
            )
        )


class SqlConnectionRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def _customer_id(self, slug: str) -> int | None:
        return self.s.scalar(select(CustomerRow.id).where(CustomerRow.slug == slug))

    def get(self, customer: str, kind: str) -> ConnectionRecord | None:
        row = self.s.connection().execute(_CONNECTION, {"customer": customer, "kind": kind}).first()
        if row is None:
            return None
        return ConnectionRecord(kind, dict(row.settings), row.secret_sealed, customer)

    def kinds(self, customer: str) -> set[str]:
        return set(
            self.s.scalars(
                select(ConnectionRow.kind)
                .join(CustomerRow, CustomerRow.id == ConnectionRow.customer_id)
                .where(CustomerRow.slug == customer)
            )
        )

    def put(self, record: ConnectionRecord, at: datetime) -> None:
        assert record.customer is not None
        customer_id = self._customer_id(record.customer)
        assert customer_id is not None
        row = self.s.scalar(
            select(ConnectionRow).where(
                ConnectionRow.customer_id == customer_id, ConnectionRow.kind == record.kind
            )
        )
        if row is None:
            row = ConnectionRow(customer_id=customer_id, kind=record.kind)
            self.s.add(row)
        row.settings = record.settings
        row.secret_sealed = record.secret_sealed
        row.updated_at = at
        self.s.flush()

    def get_psa(self) -> ConnectionRecord | None:
        row = self.s.get(PsaConfigRow, 1)
        return (
            None
            if row is None
            else ConnectionRecord(row.kind, dict(row.settings), row.secret_sealed)
        )

    def get_app(self, kind: str) -> ConnectionRecord | None:
        row = self.s.get(SharedAppRow, kind)
        return (
            None
            if row is None
            else ConnectionRecord(row.kind, dict(row.settings), row.secret_sealed)
        )

    def put_app(self, record: ConnectionRecord, at: datetime) -> None:
        row = self.s.get(SharedAppRow, record.kind)
        if row is None:
            row = SharedAppRow(kind=record.kind)
            self.s.add(row)
        row.settings = record.settings
        row.secret_sealed = record.secret_sealed
        row.updated_at = at
        self.s.flush()

    def put_psa(self, record: ConnectionRecord, at: datetime) -> None:
        row = self.s.get(PsaConfigRow, 1)
        if row is None:
            row = PsaConfigRow(id=1)
            self.s.add(row)
        row.kind = record.kind
        row.settings = record.settings
        row.secret_sealed = record.secret_sealed
        row.updated_at = at
        self.s.flush()


class SqlOutbox:
    def __init__(self, session: Session) -> None:
        self.s = session

    @staticmethod
    def _to(row: OutboxRow) -> OutboxMessage:
        return OutboxMessage(
            row.id, row.grant_id, row.customer, row.ticket_id, row.marker, row.text,
            row.state, row.attempts, row.note_id, row.last_error, row.next_attempt_at,
        )  # fmt: skip

    def enqueue(self, grant: Grant, marker: str, text: str, at: datetime) -> None:
        # A prebuilt Core insert: every grant's activation and revocation queues a note.
        self.s.connection().execute(
            _OUTBOX_INSERT,
            {
                "grant_id": grant.id,
                "customer": grant.customer,
                "ticket_id": grant.ticket_id,
                "marker": marker,
                "text": text,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
            },
        )

    def get(self, message_id: int) -> OutboxMessage | None:
        row = self.s.get(OutboxRow, message_id)
        return None if row is None else self._to(row)

    def for_grant(self, grant_id: str) -> list[OutboxMessage]:
        rows = self.s.scalars(
            select(OutboxRow).where(OutboxRow.grant_id == grant_id).order_by(OutboxRow.id)
        )
        return [self._to(r) for r in rows]

    def _due_clause(self, now: datetime) -> Any:
        return (
            (OutboxRow.state == "pending")
            & (OutboxRow.next_attempt_at <= now)
            & unclaimed(OutboxRow.claim_expires_at, now)
        )

    def due(
        self, now: datetime, limit: int, per_customer: int | None = None
    ) -> list[tuple[int, str]]:
        # In turns across customers, like grants: one customer's stuck notes go last.
        ranked = fair_turns(
            select(OutboxRow.id), OutboxRow.customer, OutboxRow.next_attempt_at,
            self._due_clause(now),
        )  # fmt: skip
        query = (
            select(OutboxRow.id, OutboxRow.customer)
            .join(ranked, ranked.c.id == OutboxRow.id)
            .order_by(ranked.c.turn, ranked.c.due_at, OutboxRow.id)
            .limit(limit)
        )
        if per_customer is not None:
            query = query.where(ranked.c.turn <= per_customer)
        rows = self.s.connection().execute(skip_locked(self.s, query, OutboxRow))
        return [(r.id, r.customer) for r in rows]

    def claim(self, message_id: int, worker: str, now: datetime, lease_until: datetime) -> bool:
        result = self.s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id, self._due_clause(now))
            .values(
                claimed_by=worker, claim_expires_at=lease_until, attempts=OutboxRow.attempts + 1
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def claim_many(
        self, message_ids: list[int], worker: str, now: datetime, lease_until: datetime
    ) -> set[int]:
        """Those of ``message_ids`` still due and unclaimed, claimed in one statement."""
        if not message_ids:
            return set()
        claimed = self.s.connection().execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(message_ids), self._due_clause(now))
            .values(
                claimed_by=worker, claim_expires_at=lease_until, attempts=OutboxRow.attempts + 1
            )
            .returning(OutboxRow.id)
        )
        return set(claimed.scalars())

    def mark_sent(self, message_id: int, note_id: str, at: datetime) -> None:
        self.s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id)
            .values(state="sent", note_id=note_id, sent_at=at, claimed_by=None,
                    claim_expires_at=None, last_error=None, next_attempt_at=None)
        )  # fmt: skip

    def mark_retry(self, message_id: int, error: str, next_attempt_at: datetime) -> None:
        self.s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id)
            .values(last_error=error, next_attempt_at=next_attempt_at, claimed_by=None,
                    claim_expires_at=None)
        )  # fmt: skip

    def next_deadline(self, now: datetime) -> datetime | None:
        due = self.s.scalar(
            select(func.min(OutboxRow.next_attempt_at, type_=UtcDateTime)).where(
                OutboxRow.state == "pending", unclaimed(OutboxRow.claim_expires_at, now)
            )
        )
        lease = self.s.scalar(
            select(func.min(OutboxRow.claim_expires_at, type_=UtcDateTime)).where(
                OutboxRow.state == "pending", OutboxRow.claim_expires_at >= now
            )
        )
        return min((c for c in (due, lease) if c is not None), default=None)

    def release(self, message_id: int, worker: str) -> None:
        self.s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id, OutboxRow.claimed_by == worker)
            .values(claimed_by=None, claim_expires_at=None)
        )

    def pending_count(self) -> int:
        return int(self.s.scalar(select(func.count()).where(OutboxRow.state == "pending")) or 0)


class SqlUserRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    @staticmethod
    def _to(row: UserRow) -> User:
        customers = None if row.customers is None else tuple(row.customers)
        return User(row.username, row.role, customers, row.password_hash.startswith(DISABLED_MARK))

    def _row(self, username: str) -> UserRow:
        row = self.s.scalar(select(UserRow).where(UserRow.username == username))
        if row is None:
            raise LookupError(f"no user {username!r}")
        return row

    def _insert(self, user: User, password_hash: str, at: datetime, **extra: Any) -> UserRow:
        row = UserRow(
            username=user.username,
            role=user.role,
            password_hash=password_hash,
            customers=None if user.customers is None else list(user.customers),
            created_at=at,
            **extra,
        )
        self.s.add(row)
        self.s.flush()
        return row

    def add(
        self, user: User, password_hash: str, token_hash: str, at: datetime,
        token_expires_at: datetime | None = None,
    ) -> None:  # fmt: skip
        row = self._insert(user, password_hash, at)
        token = ApiTokenRow(user_id=row.id, token_hash=token_hash, created_at=at)
        token.expires_at = token_expires_at
        self.s.add(token)
        self.s.flush()

    def get(self, username: str) -> User | None:
        row = self.s.scalar(select(UserRow).where(UserRow.username == username))
        return None if row is None else self._to(row)

    def by_token_hash(
        self, token_hash: str, now: datetime | None = None
    ) -> tuple[User, int] | None:
        if now is None:
            found = self.s.execute(_BY_TOKEN, {"token_hash": token_hash}).first()
        else:
            found = self.s.execute(_BY_TOKEN_NOW, {"token_hash": token_hash, "now": now}).first()
        return None if found is None else (self._to(found[0]), found[1])

    def all(self) -> list[User]:
        return [self._to(r) for r in self.s.scalars(select(UserRow).order_by(UserRow.username))]

    def update(self, user: User) -> None:
        row = self._row(user.username)
        row.role = user.role
        row.customers = None if user.customers is None else list(user.customers)
        bare = row.password_hash.removeprefix(DISABLED_MARK)
        row.password_hash = DISABLED_MARK + bare if user.disabled else bare
        self.s.flush()

    def set_password_hash(self, username: str, password_hash: str) -> None:
        row = self._row(username)
        # A disabled user stays disabled: the new password opens nothing until enabled.
        mark = DISABLED_MARK if row.password_hash.startswith(DISABLED_MARK) else ""
        row.password_hash = mark + password_hash
        self.s.flush()

    def created_at(self, username: str) -> datetime | None:
        return self.s.scalar(select(UserRow.created_at).where(UserRow.username == username))

    def add_external(self, user: User, issuer: str, subject: str, at: datetime) -> None:
        try:
            self._insert(user, NO_PASSWORD, at, oidc_issuer=issuer, oidc_subject=subject)
        except IntegrityError:
            # Two first sign-ins at once (PostgreSQL; SQLite serialises them): the caller's
            # transaction is spoilt, and a new one reads the winner.
            raise ConflictError(f"the user {user.username} was created meanwhile") from None

    def external_identity(self, username: str) -> tuple[str, str] | None:
        found = self.s.execute(
            select(UserRow.oidc_issuer, UserRow.oidc_subject).where(UserRow.username == username)
        ).first()
        if found is None or found[0] is None or found[1] is None:
            return None
        return found[0], found[1]

    def by_external(self, issuer: str, subject: str) -> User | None:
        row = self.s.scalar(
            select(UserRow).where(UserRow.oidc_issuer == issuer, UserRow.oidc_subject == subject)
        )
        return None if row is None else self._to(row)

    def named_alike(self, username: str) -> list[tuple[str, tuple[str, str] | None]]:
        # Compared here, not in SQL: SQLite's lower() folds ASCII only. Staff users are few.
        folded = username.casefold()
        rows = self.s.execute(select(UserRow.username, UserRow.oidc_issuer, UserRow.oidc_subject))
        return [
            (name, None if issuer is None or subject is None else (issuer, subject))
            for name, issuer, subject in rows
            if name.casefold() == folded
        ]
