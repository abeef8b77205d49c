"""Approvals: each customer's approval policy, and what a grant was asked to wait for.

``customers``: ``approval_required`` (identity provider kinds), ``approvals_needed``,
``approval_timeout_minutes``; NULL means the defaults (no approval needed). ``grants``: the
policy recorded at request time (``approvals_needed``, 0 for grants from before this revision
and those needing none), the end of the approval window and the approvals given.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitadmin.db.tables

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approval_required", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("approvals_needed", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("approval_timeout_minutes", sa.Integer(), nullable=True))
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("approvals_needed", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "approval_expires_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("approvals", sa.JSON(), nullable=True))
        batch_op.create_index("ix_grants_approval", ["state", "approval_expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index("ix_grants_approval")
        batch_op.drop_column("approvals")
        batch_op.drop_column("approval_expires_at")
        batch_op.drop_column("approvals_needed")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("approval_timeout_minutes")
        batch_op.drop_column("approvals_needed")
        batch_op.drop_column("approval_required")
