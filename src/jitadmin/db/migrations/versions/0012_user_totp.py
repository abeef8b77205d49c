"""A second factor for local accounts: each user's TOTP secret (sealed), when its enrolment
was confirmed, the last time step accepted (a code is good once) and the keyed hashes of its
unused recovery codes. NULL everywhere: not enrolled.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 17:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitadmin.db.tables

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_secret_sealed", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "totp_confirmed_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("totp_recovery", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_recovery")
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_confirmed_at")
        batch_op.drop_column("totp_secret_sealed")
