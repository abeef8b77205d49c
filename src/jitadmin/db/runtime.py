"""Coordination rows of the worker processes: reconciler leases and heartbeats (RuntimeRepo)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jitadmin.core.grant import MUST_END_BY_EXPIRY, values
from jitadmin.db.tables import GrantRow, ReconcileRunRow, WorkerHeartbeatRow

_OVERDUE_STATES = values(MUST_END_BY_EXPIRY)
# A worker silent this long is gone; its row (and metric label) is dropped.
_HEARTBEAT_RETENTION = timedelta(days=1)


class SqlRuntimeRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def claim_reconcile(
        self, customer: str, kind: str, worker: str, now: datetime, lease_until: datetime,
        not_run_since: datetime,
    ) -> bool:  # fmt: skip
        # Both dialects know ON CONFLICT DO NOTHING: racing first runs create one row.
        insert = (
            postgresql.insert if self.s.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        self.s.execute(
            insert(ReconcileRunRow)
            .values(customer=customer, kind=kind)
            .on_conflict_do_nothing(index_elements=["customer", "kind"])
        )
        # A conditional UPDATE is the claim: exactly one worker sees rowcount 1.
        result = self.s.execute(
            update(ReconcileRunRow)
            .where(
                ReconcileRunRow.customer == customer,
                ReconcileRunRow.kind == kind,
                or_(
                    ReconcileRunRow.claim_expires_at.is_(None),
                    ReconcileRunRow.claim_expires_at < now,
                ),
                or_(
                    ReconcileRunRow.last_run_at.is_(None),
                    ReconcileRunRow.last_run_at <= not_run_since,
                ),
            )
            .values(claimed_by=worker, claim_expires_at=lease_until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def finish_reconcile(self, customer: str, kind: str, worker: str, at: datetime) -> None:
        self.s.execute(
            update(ReconcileRunRow)
            .where(
                ReconcileRunRow.customer == customer,
                ReconcileRunRow.kind == kind,
                ReconcileRunRow.claimed_by == worker,
            )
            .values(claimed_by=None, claim_expires_at=None, last_run_at=at)
        )

    def heartbeat(self, worker: str, at: datetime) -> None:
        row = self.s.get(WorkerHeartbeatRow, worker)
        if row is None:
            self.s.add(WorkerHeartbeatRow(worker=worker, beat_at=at))
            self.s.execute(
                delete(WorkerHeartbeatRow).where(
                    WorkerHeartbeatRow.beat_at < at - _HEARTBEAT_RETENTION
                )
            )
        else:
            row.beat_at = at
        self.s.flush()

    def heartbeats(self, since: datetime) -> dict[str, datetime]:
        rows = self.s.execute(
            select(WorkerHeartbeatRow.worker, WorkerHeartbeatRow.beat_at).where(
                WorkerHeartbeatRow.beat_at >= since
            )
        )
        return {row.worker: row.beat_at for row in rows}

    def overdue_revocations(self, before: datetime) -> int:
        return int(
            self.s.scalar(
                select(func.count()).where(
                    GrantRow.state.in_(_OVERDUE_STATES), GrantRow.expires_at < before
                )
            )
            or 0
        )
