"""Each user's TOTP enrolment (columns of ``users``, migration 0012)."""

from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from jitadmin.db.tables import UserRow
from jitadmin.ports import SecondFactor


class SqlSecondFactorRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, username: str, *, lock: bool = False) -> SecondFactor | None:
        query = select(UserRow).where(UserRow.username == username)
        row = self.s.scalar(query.with_for_update() if lock else query)
        if row is None or row.totp_secret_sealed is None:
            return None
        return SecondFactor(
            row.totp_secret_sealed,
            row.totp_confirmed_at,
            row.totp_last_step,
            tuple(row.totp_recovery or ()),
        )

    def put(self, username: str, factor: SecondFactor | None) -> None:
        row = self.s.scalar(select(UserRow).where(UserRow.username == username))
        if row is None:
            raise LookupError(f"no user {username!r}")
        row.totp_secret_sealed = factor.secret_sealed if factor else None
        row.totp_confirmed_at = factor.confirmed_at if factor else None
        row.totp_last_step = factor.last_step if factor else None
        row.totp_recovery = list(factor.recovery_hashes) if factor else None
        self.s.flush()

    def use_step(self, username: str, step: int) -> bool:
        # One conditional UPDATE: of two requests with the same code, exactly one sees a row.
        result = self.s.execute(
            update(UserRow)
            .where(
                UserRow.username == username,
                or_(UserRow.totp_last_step.is_(None), UserRow.totp_last_step < step),
            )
            .values(totp_last_step=step)
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]
