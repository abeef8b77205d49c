"""Shared app registrations: the MSP's multi-tenant Entra app (client id and sealed credential),
used by every M365 connection that gives only a tenant.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-04 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitadmin.db.tables

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None

_AT = jitadmin.db.tables.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shared_apps",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_shared_apps")),
    )


def downgrade() -> None:
    op.drop_table("shared_apps")
