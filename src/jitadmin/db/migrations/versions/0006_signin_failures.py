"""Rate limits counted in SQL: ``signin_failures``, ``signin_lockouts`` and audit indexes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitadmin.db.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signin_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin_failures")),
    )
    with op.batch_alter_table("signin_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signin_failures_at"), ["at"], unique=False)
        batch_op.create_index("ix_signin_failures_username_at", ["username", "at"], unique=False)
        batch_op.create_index("ix_signin_failures_client_at", ["client", "at"], unique=False)
    op.create_table(
        "signin_lockouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin_lockouts")),
    )
    with op.batch_alter_table("signin_lockouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signin_lockouts_at"), ["at"], unique=False)
        batch_op.create_index(
            "ix_signin_lockouts_scope_subject_at", ["scope", "subject", "at"], unique=False
        )
    with op.batch_alter_table("grant_events", schema=None) as batch_op:
        batch_op.create_index("ix_grant_events_kind_at", ["kind", "at"], unique=False)
        batch_op.create_index(
            "ix_grant_events_kind_actor_at", ["kind", "actor", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("grant_events", schema=None) as batch_op:
        batch_op.drop_index("ix_grant_events_kind_actor_at")
        batch_op.drop_index("ix_grant_events_kind_at")
    op.drop_table("signin_lockouts")
    op.drop_table("signin_failures")
