"""Counted failed sign-ins (``signin_failures``) and lockout reports (``signin_lockouts``):
COUNT and MIN on indexed columns, rows kept only for the lockout window."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, delete, func, insert, select, text
from sqlalchemy.orm import Session

from jitadmin.db.tables import SignInFailureRow, SignInLockoutRow
from jitadmin.ports import RecentCount, SignInFailureCounts

_F = cast(Table, SignInFailureRow.__table__)
_L = cast(Table, SignInLockoutRow.__table__)
_ADD_FAILURE = insert(_F)
_ADD_LOCKOUT = insert(_L)
# Conflicts with itself and with writes, not with plain reads: recorders queue one at a time,
# while the check before a sign-in never waits.
_PG_LOCK = text("LOCK TABLE signin_failures IN SHARE ROW EXCLUSIVE MODE")


def recent_count(
    session: Session, at: ColumnElement[Any], *where: ColumnElement[bool]
) -> RecentCount:
    """How many rows match, and the oldest ``at`` among them, in one aggregate query."""
    count, oldest = session.execute(select(func.count(), func.min(at)).where(*where)).one()
    return RecentCount(int(count), oldest)


class SqlSignInFailureRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def counts(
        self, username: str, client: str, since: datetime, *, lock: bool = False
    ) -> SignInFailureCounts:
        if lock and self.s.get_bind().dialect.name == "postgresql":
            # SQLite needs nothing: every transaction holds the write lock from BEGIN IMMEDIATE.
            self.s.execute(_PG_LOCK)
        recent = _F.c.at >= since
        by_client = (
            recent_count(self.s, _F.c.at, _F.c.client == client, recent)
            if client
            else RecentCount(0)
        )
        return SignInFailureCounts(
            username=recent_count(self.s, _F.c.at, _F.c.username == username, recent),
            client=by_client,
            everyone=recent_count(self.s, _F.c.at, recent),
        )

    def add(self, username: str, client: str, at: datetime) -> None:
        self.s.execute(_ADD_FAILURE, {"username": username, "client": client, "at": at})

    def lockout_reported(self, scope: str, subject: str, since: datetime) -> bool:
        found = select(_L.c.id).where(_L.c.scope == scope, _L.c.subject == subject)
        return self.s.execute(found.where(_L.c.at >= since).limit(1)).first() is not None

    def report_lockout(self, scope: str, subject: str, at: datetime) -> None:
        self.s.execute(_ADD_LOCKOUT, {"scope": scope, "subject": subject, "at": at})

    def prune(self, before: datetime) -> None:
        self.s.execute(delete(_F).where(_F.c.at < before))
        self.s.execute(delete(_L).where(_L.c.at < before))
