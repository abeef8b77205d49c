"""Grants: rows to ``Grant`` and back, and the claim/lease queries the worker runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from jitadmin.core.grant import LIVE, Grant, GrantState, values
from jitadmin.db.claims import (
    LEASED_STATE_VALUES,
    WORKER_STATE_VALUES,
    fair_turns,
    skip_locked,
    unclaimed,
)
from jitadmin.db.tables import (
    GrantRow,
    UtcDateTime,
)

_GRANT_FIELDS = (
    "customer", "identity_provider", "ticket_id", "requester", "reason", "duration_minutes",
    "created_at", "expires_at", "username", "activated_at", "revoked_at", "attempts",
    "next_attempt_at", "last_error", "revoke_requested_by", "tenant_id", "access_missing_at",
    "approvals_needed", "approval_expires_at",
)  # fmt: skip


def _due(now: Any) -> Any:
    """Grants a worker may claim at ``now`` (a datetime or a bound parameter). An expired
    active grant whose expiry could not even be started has a ``next_attempt_at`` too."""
    driven = GrantRow.state.in_(WORKER_STATE_VALUES) & (GrantRow.next_attempt_at <= now)
    expired = (
        (GrantRow.state == GrantState.ACTIVE.value)
        & (GrantRow.expires_at <= now)
        & or_(GrantRow.next_attempt_at.is_(None), GrantRow.next_attempt_at <= now)
    )
    # A request whose approval window is over is claimed only to be expired (never provisioned).
    undecided = (GrantRow.state == GrantState.PENDING_APPROVAL.value) & (
        GrantRow.approval_expires_at <= now
    )
    return (driven | expired | undecided) & unclaimed(GrantRow.claim_expires_at, now)


# Prebuilt statements for the hot path (one compile, reused by every claim and step).
_GRANTS = cast(Table, GrantRow.__table__)
_CLAIM = (
    update(_GRANTS)
    .where(
        _GRANTS.c.id.in_(bindparam("ids", expanding=True)),
        _due(bindparam("now", type_=UtcDateTime)),
    )
    .values(claimed_by=bindparam("worker"), claim_expires_at=bindparam("lease_until"))
    .returning(_GRANTS.c.id)
)
_PROGRESS_READ = (
    select(_GRANTS.c.customer, _GRANTS.c.account, _GRANTS.c.steps)
    .where(_GRANTS.c.id == bindparam("gid"))
    .with_for_update()  # rendered on PostgreSQL; SQLite holds its write lock from BEGIN
)
_PROGRESS_WRITE = (
    update(_GRANTS)
    .where(_GRANTS.c.id == bindparam("gid"))
    .values(account=bindparam("new_account"), steps=bindparam("new_steps"))
)
_SET_SEALED = (
    update(_GRANTS)
    .where(_GRANTS.c.id == bindparam("gid"))
    .values(password_sealed=bindparam("sealed"))
)
_RELEASE = (
    update(_GRANTS)
    .where(_GRANTS.c.id == bindparam("gid"), _GRANTS.c.claimed_by == bindparam("worker"))
    .values(claimed_by=None, claim_expires_at=None)
)


_LIVE = (
    select(GrantRow)
    .where(
        GrantRow.requester == bindparam("requester"),
        GrantRow.customer == bindparam("customer"),
        GrantRow.identity_provider == bindparam("kind"),
        GrantRow.state.in_(values(LIVE)),
    )
    .limit(1)
)
_INSERT = insert(_GRANTS)
# The grant's own columns, read and written as Core statements: the worker loads and saves a
# grant a few times per revocation, and the ORM's identity map and flush cost more than the SQL.
_COLUMNS = ("id", "state", "account", "steps", "approvals", *_GRANT_FIELDS)
_SELECT = select(*(_GRANTS.c[name] for name in _COLUMNS)).where(_GRANTS.c.id == bindparam("gid"))
_SELECT_LOCKED = _SELECT.with_for_update()
_SAVE = (
    update(_GRANTS)
    .where(_GRANTS.c.id == bindparam("gid"))
    .values({name: bindparam(f"v_{name}") for name in _COLUMNS if name != "id"})
)


class SqlGrantRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    @staticmethod
    def _to(row: Any) -> Grant:
        """An ORM row or a Core row of the same columns."""
        return Grant(
            id=row.id,
            state=GrantState(row.state),
            account=dict(row.account or {}),
            steps=list(row.steps or []),
            approvals=[dict(a) for a in row.approvals or []],
            **{name: getattr(row, name) for name in _GRANT_FIELDS},
        )

    def add(self, grant: Grant, password_sealed: str | None) -> None:
        values = {name: getattr(grant, name) for name in _GRANT_FIELDS}
        values.update(
            id=grant.id,
            password_sealed=password_sealed,
            state=grant.state.value,
            account=dict(grant.account),
            steps=list(grant.steps),
            approvals=[dict(a) for a in grant.approvals] or None,
        )
        self.s.execute(_INSERT, values)

    def get(self, grant_id: str, *, lock: bool = False) -> Grant | None:
        statement = _SELECT_LOCKED if lock else _SELECT
        row = self.s.connection().execute(statement, {"gid": grant_id}).first()
        return None if row is None else self._to(row)

    def lock_owner(self, requester: str, customer: str, identity_provider: str) -> None:
        if self.s.get_bind().dialect.name == "postgresql":
            # Per requester, not per (requester, customer, identity provider): the cap on how
            # many customers one requester holds grants in spans all of them.
            key = f"requester|{requester}"
            self.s.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
        # SQLite: every transaction already holds the write lock from BEGIN IMMEDIATE.

    def save(self, grant: Grant) -> None:
        values = {f"v_{name}": getattr(grant, name) for name in _GRANT_FIELDS}
        values.update(
            gid=grant.id,
            v_state=grant.state.value,
            v_account=dict(grant.account),
            v_steps=list(grant.steps),
            v_approvals=[dict(a) for a in grant.approvals] or None,
        )
        saved = self.s.connection().execute(_SAVE, values)
        assert saved.rowcount == 1, "save() of a grant that was never added"

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

    def find_live(self, requester: str, customer: str, identity_provider: str) -> Grant | None:
        row = self.s.scalar(
            _LIVE, {"requester": requester, "customer": customer, "kind": identity_provider}
        )
        return None if row is None else self._to(row)

    def live_customers(self, requester: str) -> set[str]:
        query = select(GrantRow.customer).where(
            GrantRow.requester == requester, GrantRow.state.in_(values(LIVE))
        )
        return set(self.s.scalars(query.distinct()))

    def find_by_object_ids(
        self, customer: str, identity_provider: str, object_ids: list[str]
    ) -> list[Grant]:
        """Grants whose recorded account (M365 ``user_id``, AD ``object_guid``) is one of
        ``object_ids``, newest first."""
        if not object_ids:
            return []
        recorded = or_(
            GrantRow.account["user_id"].as_string().in_(object_ids),
            GrantRow.account["object_guid"].as_string().in_(object_ids),
        )
        query = (
            select(GrantRow)
            .where(
                GrantRow.customer == customer,
                GrantRow.identity_provider == identity_provider,
                recorded,
            )
            .order_by(GrantRow.created_at.desc())
        )
        return [self._to(r) for r in self.s.scalars(query)]

    def password_sealed(self, grant_id: str) -> str | None:
        return self.s.scalar(select(GrantRow.password_sealed).where(GrantRow.id == grant_id))

    def set_password_sealed(self, grant_id: str, sealed: str | None) -> None:
        self.s.connection().execute(_SET_SEALED, {"gid": grant_id, "sealed": sealed})

    def due(
        self, now: datetime, limit: int, per_customer: int | None = None
    ) -> list[tuple[str, str]]:
        # Taken in turns across customers, so one customer's backlog (or poison rows) at the
        # head of the queue never keeps another customer's expiry waiting.
        due_at = func.coalesce(GrantRow.next_attempt_at, GrantRow.expires_at)
        ranked = fair_turns(select(GrantRow.id), GrantRow.customer, due_at, _due(now))
        query = (
            select(GrantRow.id, GrantRow.customer)
            .join(ranked, ranked.c.id == GrantRow.id)
            .order_by(ranked.c.turn, ranked.c.due_at, GrantRow.id)
            .limit(limit)
        )
        if per_customer is not None:
            query = query.where(ranked.c.turn <= per_customer)
        rows = self.s.connection().execute(skip_locked(self.s, query, GrantRow))
        return [(r.id, r.customer) for r in rows]

    def defer(self, grant_id: str, error: str, next_attempt_at: datetime) -> None:
        self.s.execute(
            update(GrantRow)
            .where(GrantRow.id == grant_id)
            .values(
                attempts=GrantRow.attempts + 1,
                last_error=error[:1000],
                next_attempt_at=next_attempt_at,
            )
        )

    def postpone(self, grant_id: str, next_attempt_at: datetime) -> None:
        self.s.execute(
            update(GrantRow).where(GrantRow.id == grant_id).values(next_attempt_at=next_attempt_at)
        )

    def claim_many(
        self, grant_ids: list[str], worker: str, now: datetime, lease_until: datetime
    ) -> set[str]:
        """Claim those of ``grant_ids`` that are still due and unclaimed, in one statement.

        The conditional UPDATE is the claim: of two workers racing for a grant exactly one
        gets it back from RETURNING."""
        if not grant_ids:
            return set()
        claimed = self.s.connection().execute(
            _CLAIM, {"ids": grant_ids, "now": now, "worker": worker, "lease_until": lease_until}
        )
        return set(claimed.scalars())

    def record_progress(self, grant_id: str, step: str, data: dict[str, Any]) -> str | None:
        """Merge ``data`` into the grant's account facts and append ``step``; returns the
        grant's customer, or None if the grant is gone. Prebuilt Core statements: this runs
        once per step of every provision and revocation."""
        conn = self.s.connection()
        row = conn.execute(_PROGRESS_READ, {"gid": grant_id}).first()
        if row is None:
            return None
        account = {**(row.account or {}), **data}
        steps = [*(row.steps or []), step]
        conn.execute(_PROGRESS_WRITE, {"gid": grant_id, "new_account": account, "new_steps": steps})
        return str(row.customer)

    def renew(self, grant_ids: list[str], worker: str, lease_until: datetime) -> None:
        if grant_ids:
            self.s.execute(
                update(GrantRow)
                .where(GrantRow.id.in_(grant_ids), GrantRow.claimed_by == worker)
                .values(claim_expires_at=lease_until)
            )

    def release(self, grant_id: str, worker: str) -> None:
        self.s.connection().execute(_RELEASE, {"gid": grant_id, "worker": worker})

    def next_deadline(self, now: datetime) -> datetime | None:
        """The earliest moment any grant may need a worker: a retry, an expiry or a lease end."""
        free = unclaimed(GrantRow.claim_expires_at, now)
        candidates = [
            self.s.scalar(
                select(func.min(GrantRow.next_attempt_at, type_=UtcDateTime)).where(
                    GrantRow.state.in_(LEASED_STATE_VALUES), free
                )
            ),
            self.s.scalar(
                select(func.min(GrantRow.expires_at, type_=UtcDateTime)).where(
                    GrantRow.state == GrantState.ACTIVE.value,
                    GrantRow.next_attempt_at.is_(None),
                    free,
                )
            ),
            self.s.scalar(
                select(func.min(GrantRow.approval_expires_at, type_=UtcDateTime)).where(
                    GrantRow.state == GrantState.PENDING_APPROVAL.value, free
                )
            ),
            # Only grants that may still need work: the state index keeps this from scanning
            # the whole history (a lapsed lease on a finished grant needs no wake-up anyway).
            self.s.scalar(
                select(func.min(GrantRow.claim_expires_at, type_=UtcDateTime)).where(
                    GrantRow.state.in_(LEASED_STATE_VALUES), GrantRow.claim_expires_at >= now
                )
            ),
        ]
        return min((c for c in candidates if c is not None), default=None)

    def count_by_state(self) -> dict[str, int]:
        rows = self.s.execute(select(GrantRow.state, func.count()).group_by(GrantRow.state))
        return {state: int(count) for state, count in rows}
