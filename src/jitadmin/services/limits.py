"""Rate limits counted in the database (every process sees the same numbers), by one COUNT on
indexed columns — never by reading events into Python, so no number of other events hides any.

A refused reveal is audited too: the evidence shows both what was done and what was stopped.
Sign-in has its own counter table and rules (``signin_limits``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jitadmin.ports import AuditQuery, UnitOfWork


def count_recent(
    uow: UnitOfWork, kind: str, since: datetime, *, actor: str | None = None
) -> tuple[int, datetime | None]:
    """How many ``kind`` events since ``since`` (optionally by ``actor``), and when the oldest
    of them happened (to say when the window frees up)."""
    found = uow.audit.count(AuditQuery(kind=kind, actor=actor, since=since))
    return found.count, found.oldest


def retry_after(oldest: datetime | None, window: timedelta, now: datetime) -> int:
    if oldest is None:
        return int(window.total_seconds())
    return int((oldest + window - now).total_seconds()) + 1
