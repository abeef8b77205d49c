"""Initial schema: customers, connections, PSA, grants, audit chain, outbox, users, tokens.

Revision ID: 0001
Revises: -
Create Date: 2026-11-26 16:12:05.724076
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitadmin.db.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("psa_company_id", sa.String(length=64), nullable=False),
        sa.Column("domain_prefix", sa.String(length=64), nullable=False),
        sa.Column("max_duration_minutes", sa.Integer(), nullable=True),
        sa.Column("created_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("slug", name=op.f("uq_customers_slug")),
    )
    op.create_table(
        "grant_events",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=True),
        sa.Column("customer", sa.String(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_grant_events")),
    )
    with op.batch_alter_table("grant_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grant_events_grant_id"), ["grant_id"], unique=False)

    op.create_table(
        "grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=False),
        sa.Column("identity_provider", sa.String(length=8), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=256), nullable=True),
        sa.Column("password_sealed", sa.Text(), nullable=True),
        sa.Column("created_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("activated_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("account", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("revoke_requested_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claim_expires_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.create_index("ix_grants_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_grants_expiry", ["state", "expires_at"], unique=False)
        batch_op.create_index(
            "ix_grants_owner", ["requester", "customer", "identity_provider"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("marker", sa.String(length=120), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("note_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claim_expires_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("marker", name=op.f("uq_outbox_marker")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_grant_id"), ["grant_id"], unique=False)

    op.create_table(
        "psa_config",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psa_config")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("customers", sa.JSON(), nullable=True),
        sa.Column("created_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", jitadmin.db.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_connections_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("customer_id", "kind", name=op.f("uq_connections_customer_id")),
    )


def downgrade() -> None:

    op.drop_table("connections")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("psa_config")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_grant_id"))
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index("ix_grants_owner")
        batch_op.drop_index("ix_grants_expiry")
        batch_op.drop_index("ix_grants_due")

    op.drop_table("grants")
    with op.batch_alter_table("grant_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grant_events_grant_id"))

    op.drop_table("grant_events")
    op.drop_table("customers")
    op.drop_table("audit_head")
