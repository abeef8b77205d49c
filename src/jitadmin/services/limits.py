"""Rate limits counted from the audit trail itself, so every process sees the same numbers.

A refusal is audited too: the evidence shows both what was done and what was stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jitadmin.core.errors import JitError
from jitadmin.ports import AuditQuery, UnitOfWork

# Counting never needs more than this many events: any limit is far below it.
_COUNT_CAP = 1000


class RateLimitedError(JitError):
    """Too many attempts in the window; try again after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


def count_recent(
    uow: UnitOfWork, kind: str, since: datetime, *, actor: str | None = None,
    data_key: str | None = None, data_value: str | None = None,
) -> tuple[int, datetime | None]:  # fmt: skip
    """How many ``kind`` events since ``since`` (optionally by actor / with data[key] == value),
    and when the oldest of them happened (to say when the window frees up)."""
    events = uow.audit.search(AuditQuery(kind=kind, actor=actor, since=since), _COUNT_CAP)
    if data_key is not None:
        events = [e for e in events if str(e.data.get(data_key, "")) == data_value]
    return len(events), (events[0].at if events else None)


def retry_after(oldest: datetime | None, window: timedelta, now: datetime) -> int:
    if oldest is None:
        return int(window.total_seconds())
    return int((oldest + window - now).total_seconds()) + 1
