"""Repositories: map rows to the port dataclasses. The only module that writes SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from jitadmin.core.events import GENESIS_HASH, AuditEvent, chain_hash
from jitadmin.core.grant import UNFINISHED_STATES, WORKER_STATES, Grant, GrantState
from jitadmin.db.tables import (
    ApiTokenRow,
    AuditHeadRow,
    AuditRow,
    ConnectionRow,
    CustomerRow,
    GrantRow,
    OutboxRow,
    PsaConfigRow,
    UserRow,
    UtcDateTime,
)
from jitadmin.ports import (
    AuditQuery,
    ConnectionRecord,
    Customer,
    OutboxMessage,
    StoredAuditEvent,
    User,
)

_WORKER_STATE_VALUES = [s.value for s in WORKER_STATES]
# States a grant can be claimed in: driven by the worker, or active and due to expire.
_LEASED_STATE_VALUES = [*_WORKER_STATE_VALUES, GrantState.ACTIVE.value]
_UNFINISHED_VALUES = [s.value for s in UNFINISHED_STATES]


def _unclaimed(claim_column: Any, now: datetime) -> Any:
    return or_(claim_column.is_(None), claim_column < now)


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _skip_locked(session: Session, query: _Query, table: Any) -> _Query:
    """On PostgreSQL, workers pass over rows another worker is claiming instead of queueing."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=table)
    return query


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
        )

    def get(self, slug: str) -> Customer | None:
        row = self.s.scalar(select(CustomerRow).where(CustomerRow.slug == slug))
        return None if row is None else self._to(row)

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
                created_at=at,
            )
        )
        self.s.flush()


class SqlConnectionRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def _customer_id(self, slug: str) -> int | None:
        return self.s.scalar(select(CustomerRow.id).where(CustomerRow.slug == slug))

    def get(self, customer: str, kind: str) -> ConnectionRecord | None:
        row = self.s.scalar(
            select(ConnectionRow)
            .join(CustomerRow, CustomerRow.id == ConnectionRow.customer_id)
            .where(CustomerRow.slug == customer, ConnectionRow.kind == kind)
        )
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


_GRANT_FIELDS = (
    "customer", "identity_provider", "ticket_id", "requester", "reason", "duration_minutes",
    "created_at", "expires_at", "username", "activated_at", "revoked_at", "attempts",
    "next_attempt_at", "last_error", "revoke_requested_by",
)  # fmt: skip


class SqlGrantRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    @staticmethod
    def _to(row: GrantRow) -> Grant:
        return Grant(
            id=row.id,
            state=GrantState(row.state),
            account=dict(row.account or {}),
            steps=list(row.steps or []),
            **{name: getattr(row, name) for name in _GRANT_FIELDS},
        )

    @staticmethod
    def _fill(row: GrantRow, grant: Grant) -> None:
        row.state = grant.state.value
        row.account = dict(grant.account)
        row.steps = list(grant.steps)
        for name in _GRANT_FIELDS:
            setattr(row, name, getattr(grant, name))

    def add(self, grant: Grant, password_sealed: str | None) -> None:
        row = GrantRow(id=grant.id, password_sealed=password_sealed)
        self._fill(row, grant)
        self.s.add(row)
        self.s.flush()

    def get(self, grant_id: str, *, lock: bool = False) -> Grant | None:
        row = self.s.get(GrantRow, grant_id, with_for_update=lock or None)
        return None if row is None else self._to(row)

    def lock_owner(self, requester: str, customer: str, identity_provider: str) -> None:
        if self.s.get_bind().dialect.name == "postgresql":
            key = f"{requester}|{customer}|{identity_provider}"  # "|" appears in none of them
            self.s.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
        # SQLite: every transaction already holds the write lock from BEGIN IMMEDIATE.

    def save(self, grant: Grant) -> None:
        row = self.s.get(GrantRow, grant.id)
        assert row is not None, "save() of a grant that was never added"
        self._fill(row, grant)
        self.s.flush()

    def find(
        self,
        *,
        state: str | None = None,
        customer: str | None = None,
        requester: str | None = None,
        limit: int = 500,
    ) -> list[Grant]:
        query = select(GrantRow).order_by(GrantRow.created_at.desc()).limit(limit)
        if state:
            query = query.where(GrantRow.state == state)
        if customer:
            query = query.where(GrantRow.customer == customer)
        if requester:
            query = query.where(GrantRow.requester == requester)
        return [self._to(r) for r in self.s.scalars(query)]

    def find_unfinished(
        self, requester: str, customer: str, identity_provider: str
    ) -> Grant | None:
        row = self.s.scalar(
            select(GrantRow)
            .where(
                GrantRow.requester == requester,
                GrantRow.customer == customer,
                GrantRow.identity_provider == identity_provider,
                GrantRow.state.in_(
                    [
                        s.value
                        for s in (GrantState.REQUESTED, GrantState.PROVISIONING, GrantState.ACTIVE)
                    ]
                ),
            )
            .limit(1)
        )
        return None if row is None else self._to(row)

    def password_sealed(self, grant_id: str) -> str | None:
        return self.s.scalar(select(GrantRow.password_sealed).where(GrantRow.id == grant_id))

    def set_password_sealed(self, grant_id: str, sealed: str | None) -> None:
        self.s.execute(
            update(GrantRow).where(GrantRow.id == grant_id).values(password_sealed=sealed)
        )

    def _due_clause(self, now: datetime) -> Any:
        driven = GrantRow.state.in_(_WORKER_STATE_VALUES) & (GrantRow.next_attempt_at <= now)
        expired = (GrantRow.state == GrantState.ACTIVE.value) & (GrantRow.expires_at <= now)
        return (driven | expired) & _unclaimed(GrantRow.claim_expires_at, now)

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        query = (
            select(GrantRow.id, GrantRow.customer)
            .where(self._due_clause(now))
            .order_by(func.coalesce(GrantRow.next_attempt_at, GrantRow.expires_at))
            .limit(limit)
        )
        rows = self.s.execute(_skip_locked(self.s, query, GrantRow))
        return [(r.id, r.customer) for r in rows]

    def claim(self, grant_id: str, worker: str, now: datetime, lease_until: datetime) -> bool:
        # A conditional UPDATE is the claim: exactly one worker sees rowcount 1.
        result = self.s.execute(
            update(GrantRow)
            .where(GrantRow.id == grant_id, self._due_clause(now))
            .values(claimed_by=worker, claim_expires_at=lease_until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def renew(self, grant_ids: list[str], worker: str, lease_until: datetime) -> None:
        if grant_ids:
            self.s.execute(
                update(GrantRow)
                .where(GrantRow.id.in_(grant_ids), GrantRow.claimed_by == worker)
                .values(claim_expires_at=lease_until)
            )

    def release(self, grant_id: str, worker: str) -> None:
        self.s.execute(
            update(GrantRow)
            .where(GrantRow.id == grant_id, GrantRow.claimed_by == worker)
            .values(claimed_by=None, claim_expires_at=None)
        )

    def next_deadline(self, now: datetime) -> datetime | None:
        """The earliest moment any grant may need a worker: a retry, an expiry or a lease end."""
        unclaimed = _unclaimed(GrantRow.claim_expires_at, now)
        candidates = [
            self.s.scalar(
                select(func.min(GrantRow.next_attempt_at, type_=UtcDateTime)).where(
                    GrantRow.state.in_(_WORKER_STATE_VALUES), unclaimed
                )
            ),
            self.s.scalar(
                select(func.min(GrantRow.expires_at, type_=UtcDateTime)).where(
                    GrantRow.state == GrantState.ACTIVE.value, unclaimed
                )
            ),
            # Only grants that may still need work: the state index keeps this from scanning
            # the whole history (a lapsed lease on a finished grant needs no wake-up anyway).
            self.s.scalar(
                select(func.min(GrantRow.claim_expires_at, type_=UtcDateTime)).where(
                    GrantRow.state.in_(_LEASED_STATE_VALUES), GrantRow.claim_expires_at >= now
                )
            ),
        ]
        return min((c for c in candidates if c is not None), default=None)

    def count_by_state(self) -> dict[str, int]:
        rows = self.s.execute(select(GrantRow.state, func.count()).group_by(GrantRow.state))
        return {state: int(count) for state, count in rows}


class SqlAuditLog:
    def __init__(self, session: Session) -> None:
        self.s = session

    def append(self, event: AuditEvent) -> None:
        # Lock the chain tip so concurrent appends (PostgreSQL) form one chain.
        head = self.s.scalar(select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update())
        if head is None:
            head = AuditHeadRow(id=1, seq=0, hash=GENESIS_HASH)
            self.s.add(head)
        seq = head.seq + 1
        digest = chain_hash(head.hash, event, seq)
        self.s.add(
            AuditRow(
                seq=seq,
                kind=event.kind,
                actor=event.actor,
                at=event.at,
                grant_id=event.grant_id,
                customer=event.customer,
                data=event.data,
                prev_hash=head.hash,
                hash=digest,
            )
        )
        head.seq, head.hash = seq, digest
        self.s.flush()

    @staticmethod
    def _to(row: AuditRow) -> StoredAuditEvent:
        return StoredAuditEvent(
            row.seq,
            row.kind,
            row.actor,
            row.at,
            row.grant_id,
            row.customer,
            dict(row.data),
            row.hash,
            row.prev_hash,
        )

    def entries(self, *, grant_id: str | None = None, limit: int = 500) -> list[StoredAuditEvent]:
        return self.search(AuditQuery(grant_id=grant_id), limit)

    @staticmethod
    def _filtered(query: Select[AuditRow], q: AuditQuery) -> Select[AuditRow]:
        if q.grant_id:
            query = query.where(AuditRow.grant_id == q.grant_id)
        if q.customer:
            query = query.where(AuditRow.customer == q.customer)
        if q.actor:
            query = query.where(AuditRow.actor == q.actor)
        if q.kind:
            query = query.where(AuditRow.kind == q.kind)
        if q.since is not None:
            query = query.where(AuditRow.at >= q.since)
        if q.until is not None:
            query = query.where(AuditRow.at < q.until)
        if q.after_seq:
            query = query.where(AuditRow.seq > q.after_seq)
        if q.customers is not None:
            query = query.where(AuditRow.customer.in_(q.customers))
        return query

    def search(self, query: AuditQuery, limit: int = 500) -> list[StoredAuditEvent]:
        rows = self._filtered(select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit), query)
        return [self._to(r) for r in self.s.scalars(rows)][::-1]

    def export(self, query: AuditQuery, limit: int) -> list[StoredAuditEvent]:
        rows = self._filtered(select(AuditRow).order_by(AuditRow.seq).limit(limit), query)
        return [self._to(r) for r in self.s.scalars(rows)]

    def verify(self) -> tuple[int, int | None]:
        previous, expected_seq, checked = GENESIS_HASH, 1, 0
        for row in self.s.scalars(
            select(AuditRow).order_by(AuditRow.seq).execution_options(yield_per=1000)
        ):
            event = AuditEvent(
                row.kind, row.actor, row.at, row.grant_id, row.customer, dict(row.data)
            )
            if row.seq != expected_seq:
                # Entries are missing (deleted) or out of place: the first absent seq is bad.
                return checked, min(row.seq, expected_seq)
            if row.prev_hash != previous or chain_hash(previous, event, row.seq) != row.hash:
                return checked, row.seq
            previous, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
        head = self.s.get(AuditHeadRow, 1)
        if head is not None and (head.seq != checked or head.hash != previous):
            # Entries were removed from the end of the chain.
            return checked, checked + 1
        return checked, None


class SqlOutbox:
    def __init__(self, session: Session) -> None:
        self.s = session

    @staticmethod
    def _to(row: OutboxRow) -> OutboxMessage:
        return OutboxMessage(
            row.id, row.grant_id, row.customer, row.ticket_id, row.marker, row.text,
            row.state, row.attempts, row.note_id, row.last_error,
        )  # fmt: skip

    def enqueue(self, grant: Grant, marker: str, text: str, at: datetime) -> None:
        self.s.add(
            OutboxRow(
                grant_id=grant.id,
                customer=grant.customer,
                ticket_id=grant.ticket_id,
                marker=marker,
                text=text,
                state="pending",
                attempts=0,
                next_attempt_at=at,
                created_at=at,
            )
        )
        self.s.flush()

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
            & _unclaimed(OutboxRow.claim_expires_at, now)
        )

    def due(self, now: datetime, limit: int) -> list[tuple[int, str]]:
        query = (
            select(OutboxRow.id, OutboxRow.customer)
            .where(self._due_clause(now))
            .order_by(OutboxRow.next_attempt_at)
            .limit(limit)
        )
        rows = self.s.execute(_skip_locked(self.s, query, OutboxRow))
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
                OutboxRow.state == "pending", _unclaimed(OutboxRow.claim_expires_at, now)
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
        return User(row.username, row.role, None if row.customers is None else tuple(row.customers))

    def add(
        self, user: User, password_hash: str, token_hash: str, at: datetime,
        token_expires_at: datetime | None = None,
    ) -> None:  # fmt: skip
        row = UserRow(
            username=user.username,
            role=user.role,
            password_hash=password_hash,
            customers=None if user.customers is None else list(user.customers),
            created_at=at,
        )
        self.s.add(row)
        self.s.flush()
        token = ApiTokenRow(user_id=row.id, token_hash=token_hash, created_at=at)
        token.expires_at = token_expires_at
        self.s.add(token)
        self.s.flush()

    def get(self, username: str) -> User | None:
        row = self.s.scalar(select(UserRow).where(UserRow.username == username))
        return None if row is None else self._to(row)

    def by_token_hash(self, token_hash: str, now: datetime | None = None) -> User | None:
        query = (
            select(UserRow)
            .join(ApiTokenRow, ApiTokenRow.user_id == UserRow.id)
            .where(ApiTokenRow.token_hash == token_hash)
        )
        if now is not None:
            query = query.where(or_(ApiTokenRow.expires_at.is_(None), ApiTokenRow.expires_at > now))
        row = self.s.scalar(query)
        return None if row is None else self._to(row)

    def all(self) -> list[User]:
        return [self._to(r) for r in self.s.scalars(select(UserRow).order_by(UserRow.username))]
