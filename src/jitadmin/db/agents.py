"""On-prem agents, their enrollment codes, their jobs (leased like grants) and request nonces."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from jitadmin.core.agent_protocol import DONE, FAILED, JOB_REVOKE, LEASED, PENDING, RETIRED
from jitadmin.db.claims import skip_locked
from jitadmin.db.tables import AgentEnrollmentRow, AgentJobRow, AgentNonceRow, AgentRow
from jitadmin.ports import Agent, AgentJob

_J = AgentJobRow
_FIELDS = (
    "id", "customer", "name", "public_key", "created_at", "created_by", "version", "tenant_id",
    "domain", "last_seen_at", "revoked_at",
)  # fmt: skip
_JOB_FIELDS = (
    "id", "customer", "grant_id", "kind", "payload", "state", "created_at", "sealed",
    "attempts", "lease_owner", "lease_expires_at", "result", "finished_at", "finished_by",
)  # fmt: skip


def _agent(row: AgentRow) -> Agent:
    return Agent(**{name: getattr(row, name) for name in _FIELDS})


def _job(row: AgentJobRow) -> AgentJob:
    return AgentJob(**{name: getattr(row, name) for name in _JOB_FIELDS})


_OTHER = aliased(AgentJobRow)


def _revoke_queued() -> Any:
    """The job's grant has a revoke job that is not retired: granting is over for it."""
    return exists().where(
        _OTHER.grant_id == _J.grant_id, _OTHER.kind == JOB_REVOKE, _OTHER.state != RETIRED
    )


def _held_elsewhere(now: datetime, agent_id: str) -> Any:
    """Another job of the job's grant is leased, live, to another agent."""
    return exists().where(
        _OTHER.grant_id == _J.grant_id, _OTHER.id != _J.id, _OTHER.state == LEASED,
        _OTHER.lease_owner != agent_id, _OTHER.lease_expires_at >= now,
    )  # fmt: skip


def _takeable(now: datetime, agent_id: str) -> Any:
    # Pending, or leased by an agent whose lease lapsed (it died mid-job): another finishes it.
    # An agent runs one job at a time, so when it asks for one, any job still leased to it is
    # one it no longer works on (it restarted, or its answer was lost): it gets it back at once.
    leased = _J.state == LEASED
    free = (
        (_J.state == PENDING)
        | (leased & (_J.lease_expires_at < now))
        | (leased & (_J.lease_owner == agent_id))
    )
    # A revoke never runs beside a grant job another agent may still be enabling the account
    # in; once a revoke is queued, no grant or extend job of that grant is handed out again.
    is_revoke = _J.kind == JOB_REVOKE
    return free & ((is_revoke & ~_held_elsewhere(now, agent_id)) | (~is_revoke & ~_revoke_queued()))


class SqlAgentRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    # -- enrollment -----------------------------------------------------------------------

    def add_enrollment(
        self, code_hash: str, customer: str, created_by: str, at: datetime, expires_at: datetime
    ) -> None:
        self.s.add(
            AgentEnrollmentRow(
                code_hash=code_hash, customer=customer, created_by=created_by, created_at=at,
                expires_at=expires_at,
            )
        )  # fmt: skip
        self.s.flush()

    def use_enrollment(self, code_hashes: Sequence[str], at: datetime) -> str | None:
        row = AgentEnrollmentRow
        found = self.s.scalar(select(row).where(row.code_hash.in_(list(code_hashes))))
        if found is None:
            return None
        # The conditional UPDATE is the use: of two racing enrollments exactly one wins.
        used = self.s.execute(
            update(row)
            .where(row.id == found.id, row.used_at.is_(None), row.expires_at > at)
            .values(used_at=at)
        )
        return found.customer if used.rowcount == 1 else None  # type: ignore[attr-defined]

    # -- agents ---------------------------------------------------------------------------

    def add(self, agent: Agent) -> None:
        self.s.add(AgentRow(**{name: getattr(agent, name) for name in _FIELDS}))
        self.s.flush()

    def get(self, agent_id: str) -> Agent | None:
        row = self.s.get(AgentRow, agent_id)
        return None if row is None else _agent(row)

    def for_customer(self, customer: str) -> list[Agent]:
        rows = self.s.scalars(
            select(AgentRow).where(AgentRow.customer == customer).order_by(AgentRow.created_at)
        )
        return [_agent(r) for r in rows]

    def all(self) -> list[Agent]:
        return [_agent(r) for r in self.s.scalars(select(AgentRow).order_by(AgentRow.created_at))]

    def seen(
        self, agent_id: str, at: datetime, version: str | None = None,
        tenant_id: str | None = None, domain: str | None = None,
    ) -> None:  # fmt: skip
        values: dict[str, Any] = {"last_seen_at": at}
        for name, value in (("version", version), ("tenant_id", tenant_id), ("domain", domain)):
            if value is not None:
                values[name] = value
        self.s.execute(update(AgentRow).where(AgentRow.id == agent_id).values(**values))

    def revoke(self, agent_id: str, at: datetime) -> bool:
        done = self.s.execute(
            update(AgentRow)
            .where(AgentRow.id == agent_id, AgentRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]

    # -- nonces ---------------------------------------------------------------------------

    def use_nonce(self, agent_id: str, nonce: str, at: datetime) -> bool:
        dialect = self.s.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        table = cast(Table, AgentNonceRow.__table__)
        statement = (
            insert(table)
            .values(agent_id=agent_id, nonce=nonce, seen_at=at)
            .on_conflict_do_nothing()
            .returning(table.c.nonce)
        )
        # RETURNING, not the row count (which the drivers do not report alike here).
        return self.s.connection().execute(statement).first() is not None

    def prune_nonces(self, before: datetime) -> None:
        self.s.execute(delete(AgentNonceRow).where(AgentNonceRow.seen_at < before))

    # -- jobs -----------------------------------------------------------------------------

    def add_job(self, job: AgentJob) -> None:
        self.s.add(AgentJobRow(**{name: getattr(job, name) for name in _JOB_FIELDS}))
        self.s.flush()

    def job(self, job_id: str) -> AgentJob | None:
        row = self.s.get(AgentJobRow, job_id)
        return None if row is None else _job(row)

    def current_job(self, grant_id: str, kind: str) -> AgentJob | None:
        row = self.s.scalar(
            select(_J)
            .where(_J.grant_id == grant_id, _J.kind == kind, _J.state != RETIRED)
            .order_by(_J.created_at.desc(), _J.id)
            .limit(1)
        )
        return None if row is None else _job(row)

    def jobs_for(self, grant_id: str) -> list[AgentJob]:
        rows = self.s.scalars(select(_J).where(_J.grant_id == grant_id).order_by(_J.created_at))
        return [_job(r) for r in rows]

    def lease(
        self, customer: str, agent_id: str, now: datetime, lease_until: datetime
    ) -> AgentJob | None:
        query = (
            select(_J.id)
            .where(_J.customer == customer, _takeable(now, agent_id))
            .order_by(_J.created_at, _J.id)
            .limit(1)
        )
        job_id = self.s.scalar(skip_locked(self.s, query, _J))
        if job_id is None:
            return None
        taken = self.s.execute(
            update(_J)
            .where(_J.id == job_id, _takeable(now, agent_id))
            .values(
                state=LEASED, lease_owner=agent_id, lease_expires_at=lease_until,
                attempts=_J.attempts + 1,
            )
        )  # fmt: skip
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return self.job(job_id)

    def renew(self, job_id: str, agent_id: str, lease_until: datetime) -> bool:
        """False when the job is not (or no longer) leased to this agent, or when it gives
        access and a revoke of its grant is queued meanwhile (the agent stops there)."""
        done = self.s.execute(
            update(_J)
            .where(
                _J.id == job_id, _J.state == LEASED, _J.lease_owner == agent_id,
                (_J.kind == JOB_REVOKE) | ~_revoke_queued(),
            )
            .values(lease_expires_at=lease_until)
        )  # fmt: skip
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def finish(
        self, job_id: str, agent_id: str, state: str, result: dict[str, Any], at: datetime,
        *, unleased: bool = False,
    ) -> bool:  # fmt: skip
        assert state in (DONE, FAILED)
        held = (_J.state == LEASED) & (_J.lease_owner == agent_id)
        # Only the agent holding the lease (or, for a job nobody took over, the one it lapsed
        # from) may finish it: never an agent that lost it to another.
        done = self.s.execute(
            update(_J)
            .where(_J.id == job_id, (held | (_J.state == PENDING)) if unleased else held)
            .values(
                state=state, result=result, finished_at=at, finished_by=agent_id,
                lease_owner=None, lease_expires_at=None,
                # Whatever was sealed for the agent is of no more use to anyone.
                sealed=None,
            )
        )  # fmt: skip
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def retire(self, job_id: str) -> None:
        self.s.execute(update(_J).where(_J.id == job_id).values(state=RETIRED, sealed=None))

    def retire_pending(self, grant_id: str, kinds: Sequence[str]) -> int:
        """Drop a grant's jobs of ``kinds`` that no agent has taken yet (a leased one runs
        to its end: the jobs after it wait for it)."""
        done = self.s.execute(
            update(_J)
            .where(_J.grant_id == grant_id, _J.kind.in_(list(kinds)), _J.state == PENDING)
            .values(state=RETIRED, sealed=None)
        )
        return int(done.rowcount)  # type: ignore[attr-defined]

    def release_agent(self, agent_id: str) -> None:
        """A revoked agent's leases go back to the queue at once, for another agent."""
        self.s.execute(
            update(_J)
            .where(_J.state == LEASED, _J.lease_owner == agent_id)
            .values(state=PENDING, lease_owner=None, lease_expires_at=None)
        )

    def backlog(self) -> dict[str, int]:
        rows = self.s.execute(
            select(_J.customer, func.count())
            .where(or_(_J.state == PENDING, _J.state == LEASED))
            .group_by(_J.customer)
        )
        return {customer: int(count) for customer, count in rows}
