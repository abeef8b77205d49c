"""Audit entries record which credential acted (``grant_events.credential``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grant_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("grant_events", schema=None) as batch_op:
        batch_op.drop_column("credential")
