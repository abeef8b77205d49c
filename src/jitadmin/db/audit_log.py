"""The hash-chained audit log (``grant_events``) and its verification."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from sqlalchemy import Select, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from jitadmin.core.events import GENESIS_HASH, AuditEvent, chain_hash
from jitadmin.db.signin_failures import recent_count
from jitadmin.db.tables import (
    AuditHeadRow,
    AuditRow,
)
from jitadmin.ports import (
    AuditQuery,
    RecentCount,
    StoredAuditEvent,
)

_EVENTS = cast(Table, AuditRow.__table__)
_HEAD = cast(Table, AuditHeadRow.__table__)
_HEAD_READ = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_INSERT_EVENT = insert(_EVENTS)
_HEAD_MOVE = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_HEAD_START = insert(_HEAD).values(id=1, seq=bindparam("new_seq"), hash=bindparam("new_hash"))


class SqlAuditLog:
    def __init__(self, session: Session, credential: str | None = None) -> None:
        self.s = session
        # The credential acting in this unit of work: stamped on every event that names none.
        self.credential = credential

    def append(self, event: AuditEvent) -> None:
        if event.credential is None and self.credential is not None:
            event = replace(event, credential=self.credential)
        # Prebuilt Core statements on the session's connection, not ORM objects: the worker
        # appends an event per recorded step, and the ORM cost more CPU than the hashing.
        conn = self.s.connection()
        # Lock the chain tip so concurrent appends (PostgreSQL) form one chain.
        head = conn.execute(_HEAD_READ).first()
        previous, seq = (head.hash, head.seq + 1) if head is not None else (GENESIS_HASH, 1)
        digest = chain_hash(previous, event, seq)
        conn.execute(
            _INSERT_EVENT,
            {
                "seq": seq,
                "kind": event.kind,
                "actor": event.actor,
                "at": event.at,
                "grant_id": event.grant_id,
                "customer": event.customer,
                "data": event.data,
                "credential": event.credential,
                "prev_hash": previous,
                "hash": digest,
            },
        )
        tip = {"new_seq": seq, "new_hash": digest}
        conn.execute(_HEAD_MOVE if head is not None else _HEAD_START, tip)

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
            row.credential,
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

    def count(self, query: AuditQuery) -> RecentCount:
        # The same filters as search, as one COUNT/MIN (ix_grant_events_kind_[actor_]at).
        where = self._filtered(select(AuditRow), query).whereclause
        return recent_count(self.s, _EVENTS.c.at, *(() if where is None else (where,)))

    def verify(self) -> tuple[int, int | None]:
        previous, expected_seq, checked = GENESIS_HASH, 1, 0
        for row in self.s.scalars(
            select(AuditRow).order_by(AuditRow.seq).execution_options(yield_per=1000)
        ):
            event = AuditEvent(
                row.kind, row.actor, row.at, row.grant_id, row.customer, dict(row.data),
                row.credential,
            )  # fmt: skip
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
