"""Shared pieces of the claim queries: which states the worker drives, what "unclaimed" means."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, Subquery, func, or_
from sqlalchemy.orm import Session

from jitadmin.core.grant import LEASED, WORKER, values

WORKER_STATE_VALUES = values(WORKER)
# States a grant can be claimed in: driven by the worker, or active and due to expire.
LEASED_STATE_VALUES = values(LEASED)


def unclaimed(claim_column: Any, now: datetime) -> Any:
    return or_(claim_column.is_(None), claim_column < now)


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def skip_locked(session: Session, query: _Query, table: Any) -> _Query:
    """On PostgreSQL, workers pass over rows another worker is claiming instead of queueing."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=table)
    return query


def fair_turns(query: Select[Any], customer: Any, due_at: Any, due: Any) -> Subquery:
    """``query`` (which selects an ``id``) over the due rows, with each row's ``due_at`` and
    its ``turn``: 1 for every customer's oldest due row, 2 for the next... Ordering claims by
    turn first is a round-robin over customers. The window sits in a subquery because
    PostgreSQL allows no ``FOR UPDATE`` beside a window function."""
    row_id = query.selected_columns[0]
    turn = func.row_number().over(partition_by=customer, order_by=(due_at, row_id))
    return query.add_columns(due_at.label("due_at"), turn.label("turn")).where(due).subquery()
