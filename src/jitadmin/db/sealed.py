"""Every sealed column at rest, read in keyset batches and rewritten conditionally (rotation)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jitadmin.db.tables import (
    ConnectionRow,
    CustomerRow,
    GrantRow,
    PsaConfigRow,
    SharedAppRow,
    UserRow,
)
from jitadmin.ports import SealedValue


class SqlSealedStore:
    def __init__(self, session: Session) -> None:
        self.s = session

    def batch(self, column: str, after: str | None, limit: int) -> list[SealedValue]:
        if column == "connection":
            rows = self.s.execute(
                select(ConnectionRow.id, CustomerRow.slug, ConnectionRow.kind,
                       ConnectionRow.secret_sealed, ConnectionRow.settings)
                .join(CustomerRow, CustomerRow.id == ConnectionRow.customer_id)
                .where(ConnectionRow.id > int(after or 0))
                .order_by(ConnectionRow.id)
                .limit(limit)
            )  # fmt: skip
            return [
                SealedValue(column, str(i), slug, kind, sealed, dict(settings))
                for i, slug, kind, sealed, settings in rows
            ]
        if column == "psa":
            psa = self.s.execute(
                select(
                    PsaConfigRow.id,
                    PsaConfigRow.kind,
                    PsaConfigRow.secret_sealed,
                    PsaConfigRow.settings,
                )
                .where(PsaConfigRow.id > int(after or 0))
                .order_by(PsaConfigRow.id)
                .limit(limit)
            )
            return [
                SealedValue(column, str(i), None, kind, sealed, dict(settings))
                for i, kind, sealed, settings in psa
            ]
        if column == "shared_app":
            apps = self.s.execute(
                select(SharedAppRow.kind, SharedAppRow.secret_sealed, SharedAppRow.settings)
                .where(SharedAppRow.kind > (after or ""))
                .order_by(SharedAppRow.kind)
                .limit(limit)
            )
            return [
                SealedValue(column, kind, None, kind, sealed, dict(settings))
                for kind, sealed, settings in apps
            ]
        if column == "grant_password":
            grants = self.s.execute(
                select(GrantRow.id, GrantRow.customer, GrantRow.password_sealed)
                .where(GrantRow.id > (after or ""), GrantRow.password_sealed.is_not(None))
                .order_by(GrantRow.id)
                .limit(limit)
            )
            return [
                SealedValue(column, gid, customer, "password", sealed or "")
                for gid, customer, sealed in grants
            ]
        if column == "totp_secret":
            users = self.s.execute(
                select(UserRow.username, UserRow.totp_secret_sealed)
                .where(UserRow.username > (after or ""), UserRow.totp_secret_sealed.is_not(None))
                .order_by(UserRow.username)
                .limit(limit)
            )
            return [SealedValue(column, name, None, "totp", sealed or "") for name, sealed in users]
        raise ValueError(f"unknown sealed column {column!r}")

    def replace(self, value: SealedValue, new_sealed: str) -> bool:
        if value.column == "connection":
            statement = (
                update(ConnectionRow)
                .where(ConnectionRow.id == int(value.key))
                .where(ConnectionRow.secret_sealed == value.sealed)
                .values(secret_sealed=new_sealed)
            )
        elif value.column == "psa":
            statement = (
                update(PsaConfigRow)
                .where(PsaConfigRow.id == int(value.key))
                .where(PsaConfigRow.secret_sealed == value.sealed)
                .values(secret_sealed=new_sealed)
            )
        elif value.column == "shared_app":
            statement = (
                update(SharedAppRow)
                .where(SharedAppRow.kind == value.key)
                .where(SharedAppRow.secret_sealed == value.sealed)
                .values(secret_sealed=new_sealed)
            )
        elif value.column == "totp_secret":
            statement = (
                update(UserRow)
                .where(UserRow.username == value.key, UserRow.totp_secret_sealed == value.sealed)
                .values(totp_secret_sealed=new_sealed)
            )
        else:
            statement = (
                update(GrantRow)
                .where(GrantRow.id == value.key, GrantRow.password_sealed == value.sealed)
                .values(password_sealed=new_sealed)
            )
        return bool(self.s.execute(statement).rowcount)  # type: ignore[attr-defined]
