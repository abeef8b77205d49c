"""On-prem agents: the agents (public keys only), one-time enrollment codes (keyed hashes),
the jobs handed to them (leased; secrets sealed) and the nonces of their signed requests.

Revision ID: 0014
Revises: 0015
Create Date: 2026-12-04 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitadmin.db.tables

revision = "0014"
down_revision = "0015"
branch_labels = None
depends_on = None

_AT = jitadmin.db.tables.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=200), nullable=True),
        sa.Column("domain", sa.String(length=255), nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("last_seen_at", _AT, nullable=True),
        sa.Column("revoked_at", _AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agents_customer"), ["customer"], unique=False)
    op.create_table(
        "agent_enrollments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=128), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("expires_at", _AT, nullable=False),
        sa.Column("used_at", _AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_enrollments")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_agent_enrollments_code_hash")),
    )
    op.create_table(
        "agent_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=36), nullable=True),
        sa.Column("lease_expires_at", _AT, nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("finished_at", _AT, nullable=True),
        sa.Column("finished_by", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_jobs")),
    )
    with op.batch_alter_table("agent_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_agent_jobs_queue", ["customer", "state"], unique=False)
        batch_op.create_index("ix_agent_jobs_grant", ["grant_id", "kind"], unique=False)
    op.create_table(
        "agent_nonces",
        sa.Column("agent_id", sa.String(length=36), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "nonce", name=op.f("pk_agent_nonces")),
    )
    with op.batch_alter_table("agent_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_nonces_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    op.drop_table("agent_nonces")
    op.drop_table("agent_jobs")
    op.drop_table("agent_enrollments")
    op.drop_table("agents")
