"""Repositories for the web console: browser sessions and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from jitadmin.db.tables import DISABLED_MARK, ApiTokenRow, UserRow, WebSessionRow
from jitadmin.ports import ApiToken, WebSession


class SqlWebSessionRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, web_session: WebSession) -> None:
        user_id = self.s.scalar(select(UserRow.id).where(UserRow.username == web_session.username))
        if user_id is None:
            raise LookupError(f"no user {web_session.username!r}")
        self.s.add(
            WebSessionRow(
                id_hash=web_session.id_hash,
                user_id=user_id,
                csrf_token=web_session.csrf_token,
                created_at=web_session.created_at,
                last_seen_at=web_session.last_seen_at,
                expires_at=web_session.expires_at,
            )
        )
        self.s.flush()

    def get(self, id_hash: str) -> WebSession | None:
        found = self.s.execute(
            select(WebSessionRow, UserRow.username)
            .join(UserRow, UserRow.id == WebSessionRow.user_id)
            .where(WebSessionRow.id_hash == id_hash)
        ).first()
        if found is None:
            return None
        row, username = found
        return WebSession(
            row.id_hash, username, row.csrf_token, row.created_at, row.last_seen_at, row.expires_at
        )

    def touch(self, id_hash: str, at: datetime) -> None:
        row = self.s.scalar(select(WebSessionRow).where(WebSessionRow.id_hash == id_hash))
        if row is not None:
            row.last_seen_at = at
            self.s.flush()

    def delete(self, id_hash: str) -> None:
        self.s.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == id_hash))

    def delete_expired(self, now: datetime, idle_since: datetime) -> int:
        result = self.s.execute(
            delete(WebSessionRow).where(
                or_(WebSessionRow.expires_at <= now, WebSessionRow.last_seen_at < idle_since)
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def _user_id(self, username: str) -> Any:
        return select(UserRow.id).where(UserRow.username == username).scalar_subquery()

    def delete_for_user(self, username: str) -> int:
        result = self.s.execute(
            delete(WebSessionRow).where(WebSessionRow.user_id == self._user_id(username))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def count_for_user(self, username: str) -> int:
        found = self.s.scalar(
            select(func.count())
            .select_from(WebSessionRow)
            .where(WebSessionRow.user_id == self._user_id(username))
        )
        return int(found or 0)

    def password_hash(self, username: str) -> str | None:
        """The argon2id hash, without the disabled mark (``User.disabled`` says that)."""
        found = self.s.scalar(select(UserRow.password_hash).where(UserRow.username == username))
        return None if found is None else found.removeprefix(DISABLED_MARK)


class SqlApiTokenRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    @staticmethod
    def _to(row: ApiTokenRow, username: str) -> ApiToken:
        return ApiToken(row.id, username, row.created_at, row.token_hash[:8], row.expires_at)

    def all(self) -> list[ApiToken]:
        rows = self.s.execute(
            select(ApiTokenRow, UserRow.username)
            .join(UserRow, UserRow.id == ApiTokenRow.user_id)
            .order_by(UserRow.username, ApiTokenRow.created_at)
        )
        return [self._to(row, username) for row, username in rows]

    def add(
        self, username: str, token_hash: str, at: datetime, expires_at: datetime | None = None
    ) -> int:
        user_id = self.s.scalar(select(UserRow.id).where(UserRow.username == username))
        if user_id is None:
            raise LookupError(f"no user {username!r}")
        row = ApiTokenRow(user_id=user_id, token_hash=token_hash, created_at=at)
        row.expires_at = expires_at
        self.s.add(row)
        self.s.flush()
        return row.id

    def delete(self, token_id: int) -> ApiToken | None:
        found = self.s.execute(
            select(ApiTokenRow, UserRow.username)
            .join(UserRow, UserRow.id == ApiTokenRow.user_id)
            .where(ApiTokenRow.id == token_id)
        ).first()
        if found is None:
            return None
        row, username = found
        token = self._to(row, username)
        self.s.delete(row)
        self.s.flush()
        return token
