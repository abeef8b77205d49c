"""The hash-chained audit log (``grant_events``), its keyed head and its verification."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from jitadmin.core.errors import AuditTamperedError
from jitadmin.core.events import (
    GENESIS_HASH,
    AuditEvent,
    AuditHead,
    AuditKeys,
    chain_hash,
    head_mac,
    keyed_chain_hash,
    matches,
)
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
_HEAD_COLUMNS = (_HEAD.c.seq, _HEAD.c.hash, _HEAD.c.mac, _HEAD.c.keyed_from)
_HEAD_READ = select(*_HEAD_COLUMNS).where(_HEAD.c.id == 1).with_for_update()
_INSERT_EVENT = insert(_EVENTS)
_HEAD_MOVE = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(
        seq=bindparam("new_seq"), hash=bindparam("new_hash"), mac=bindparam("new_mac"),
        keyed_from=bindparam("new_keyed_from"),
    )
)  # fmt: skip
_HEAD_START = insert(_HEAD).values(
    id=1, seq=bindparam("new_seq"), hash=bindparam("new_hash"), mac=bindparam("new_mac"),
    keyed_from=bindparam("new_keyed_from"),
)  # fmt: skip


class SqlAuditLog:
    def __init__(
        self, session: Session, keys: AuditKeys | None = None, credential: str | None = None
    ) -> None:
        self.s = session
        self._keys = keys
        # The credential acting in this unit of work: stamped on every event that names none.
        self.credential = credential

    @property
    def keys(self) -> AuditKeys:
        if self._keys is None:
            raise RuntimeError("this database was opened without the audit keys")
        return self._keys

    def _authentic(self, head: Any) -> bool:
        """Whether a head row's MAC is right under the current or a previous key."""
        if head.mac is None or head.keyed_from is None:
            return False
        macs = [head_mac(k, head.seq, head.hash, head.keyed_from) for k in self.keys.head]
        return matches(head.mac, macs)

    def _move_head(self, conn: Any, seq: int, digest: str, keyed_from: int, *, new: bool) -> None:
        tip = {
            "new_seq": seq,
            "new_hash": digest,
            "new_mac": head_mac(self.keys.head[0], seq, digest, keyed_from),
            "new_keyed_from": keyed_from,
        }
        conn.execute(_HEAD_START if new else _HEAD_MOVE, tip)

    def append(self, event: AuditEvent) -> None:
        if event.credential is None and self.credential is not None:
            event = replace(event, credential=self.credential)
        # Prebuilt Core statements on the session's connection, not ORM objects: the worker
        # appends an event per recorded step, and the ORM cost more CPU than the hashing.
        conn = self.s.connection()
        # Lock the chain tip so concurrent appends (PostgreSQL) form one chain.
        head = conn.execute(_HEAD_READ).first()
        if head is None:
            previous, seq, keyed_from = GENESIS_HASH, 1, 1
        elif self._authentic(head):
            previous, seq, keyed_from = head.hash, head.seq + 1, head.keyed_from
        else:
            # Moved back (newest entries deleted) or written without the key: refuse to
            # extend a chain whose end cannot be trusted; `jitadmin audit verify` says where.
            raise AuditTamperedError(
                "the audit log's head record failed authentication (was the database edited?); "
                "nothing is recorded until it is investigated: run `jitadmin audit verify`"
            )
        digest = keyed_chain_hash(self.keys.chain[0], previous, event, seq)
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
        self._move_head(conn, seq, digest, keyed_from, new=head is None)

    def head(self) -> AuditHead | None:
        """The chain's tip, or None when nothing was recorded yet; raises if the head is forged."""
        head = self.s.execute(select(*_HEAD_COLUMNS).where(_HEAD.c.id == 1)).first()
        if head is None:
            return None
        if not self._authentic(head):
            raise AuditTamperedError("the audit log's head record failed authentication")
        return AuditHead(head.seq, head.hash)

    def hash_at(self, seq: int) -> str | None:
        return self.s.scalar(select(_EVENTS.c.hash).where(_EVENTS.c.seq == seq))

    def adopt_legacy_head(self) -> AuditHead | None:
        """Key the head of a chain written before keying; later entries are keyed (one-time)."""
        conn = self.s.connection()
        head = conn.execute(_HEAD_READ).first()
        if head is None:
            last = self.s.execute(
                select(_EVENTS.c.seq, _EVENTS.c.hash).order_by(_EVENTS.c.seq.desc()).limit(1)
            ).first()
            if last is None:
                return None
            self._move_head(conn, last.seq, last.hash, last.seq + 1, new=True)
            return AuditHead(last.seq, last.hash)
        if head.mac is not None:
            return None
        self._move_head(conn, head.seq, head.hash, head.seq + 1, new=False)
        return AuditHead(head.seq, head.hash)

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

    def _entry_ok(self, row: AuditRow, previous: str, keyed_from: int) -> bool:
        event = AuditEvent(
            row.kind, row.actor, row.at, row.grant_id, row.customer, dict(row.data),
            row.credential,
        )  # fmt: skip
        if row.prev_hash != previous:
            return False
        if row.seq < keyed_from:  # written before keying: plain SHA-256, pinned by the first keyed
            return chain_hash(previous, event, row.seq) == row.hash
        candidates = [keyed_chain_hash(k, previous, event, row.seq) for k in self.keys.chain]
        return matches(row.hash, candidates)

    def verify(self) -> tuple[int, int | None]:
        head = self.s.execute(select(*_HEAD_COLUMNS).where(_HEAD.c.id == 1)).first()
        keyed_from = (head.keyed_from if head is not None else None) or 1
        previous, expected_seq, checked = GENESIS_HASH, 1, 0
        for row in self.s.scalars(
            select(AuditRow).order_by(AuditRow.seq).execution_options(yield_per=1000)
        ):
            if row.seq != expected_seq:
                # Entries are missing (deleted) or out of place: the first absent seq is bad.
                return checked, min(row.seq, expected_seq)
            if not self._entry_ok(row, previous, keyed_from):
                return checked, row.seq
            previous, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
        if head is None:
            # No head but entries: it was deleted (an empty log has neither).
            return checked, None if checked == 0 else checked + 1
        if not self._authentic(head) or head.seq != checked or head.hash != previous:
            # Entries were removed from the end of the chain, or the head was rewritten.
            return checked, checked + 1
        return checked, None
