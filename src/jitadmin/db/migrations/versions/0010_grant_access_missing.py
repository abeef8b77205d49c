"""The drift flag gets its own column: ``grants.access_missing_at``.

Until this revision the drift reconciler wrote its "admin access not found" flag into
``last_error`` (text starting with ``drift:``). Flags already there move to the new column (the
time is read back from the text, else the grant's activation) and ``last_error`` is cleared, so
``last_error`` only ever holds the worker's last failed attempt. The API spells a flag as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 13:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import jitadmin.db.tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FLAG = "drift: "
_AT = " on the target at "

_grants = sa.table(
    "grants",
    sa.column("id", sa.String()),
    sa.column("last_error", sa.Text()),
    sa.column("activated_at", jitadmin.db.tables.UtcDateTime(timezone=True)),
    sa.column("created_at", jitadmin.db.tables.UtcDateTime(timezone=True)),
    sa.column("access_missing_at", jitadmin.db.tables.UtcDateTime(timezone=True)),
)


def _flagged_at(text: str, fallback: datetime) -> datetime:
    """The time in "drift: admin access not found on the target at <iso>; ..."."""
    _, _, rest = text.partition(_AT)
    try:
        when = datetime.fromisoformat(rest.split(";", 1)[0].strip())
    except ValueError:
        return fallback
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def upgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "access_missing_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True
            )
        )
    bind = op.get_bind()
    flagged = bind.execute(
        sa.select(
            _grants.c.id, _grants.c.last_error, _grants.c.activated_at, _grants.c.created_at
        ).where(_grants.c.last_error.like(f"{_FLAG}%"))
    ).all()
    for row in flagged:
        at = _flagged_at(row.last_error, row.activated_at or row.created_at)
        bind.execute(
            sa.update(_grants)
            .where(_grants.c.id == row.id)
            .values(access_missing_at=at, last_error=None)
        )


def downgrade() -> None:
    bind = op.get_bind()
    flagged = bind.execute(
        sa.select(_grants.c.id, _grants.c.access_missing_at).where(
            _grants.c.access_missing_at.is_not(None), _grants.c.last_error.is_(None)
        )
    ).all()
    for row in flagged:
        text = (
            f"{_FLAG}admin access not found{_AT}{row.access_missing_at.isoformat()}; the grant "
            "stays active and still ends on time"
        )
        bind.execute(sa.update(_grants).where(_grants.c.id == row.id).values(last_error=text))
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_column("access_missing_at")
