"""Drift reconciler leases (``reconcile_runs``) and worker heartbeats (``worker_heartbeats``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 17:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitadmin.db.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_runs",
        sa.Column("customer", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claim_expires_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer", "kind", name=op.f("pk_reconcile_runs")),
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("beat_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker", name=op.f("pk_worker_heartbeats")),
    )
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_heartbeats_beat_at"), ["beat_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_heartbeats_beat_at"))
    op.drop_table("worker_heartbeats")
    op.drop_table("reconcile_runs")
