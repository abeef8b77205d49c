"""Shared pieces of the claim queries: which states the worker drives, what "unclaimed" means."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, or_
from sqlalchemy.orm import Session

from jitadmin.core.grant import UNFINISHED_STATES, WORKER_STATES, GrantState

WORKER_STATE_VALUES = [s.value for s in WORKER_STATES]
# States a grant can be claimed in: driven by the worker, or active and due to expire.
LEASED_STATE_VALUES = [*WORKER_STATE_VALUES, GrantState.ACTIVE.value]
UNFINISHED_VALUES = [s.value for s in UNFINISHED_STATES]


def unclaimed(claim_column: Any, now: datetime) -> Any:
    return or_(claim_column.is_(None), claim_column < now)


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def skip_locked(session: Session, query: _Query, table: Any) -> _Query:
    """On PostgreSQL, workers pass over rows another worker is claiming instead of queueing."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=table)
    return query
