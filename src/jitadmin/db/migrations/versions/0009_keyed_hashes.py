"""Keyed hashes: the audit head carries an HMAC (``mac``) and where keying began (``keyed_from``).

Both stay NULL here: computing them needs the secret key, which migrations never see. The
composition root (``jitadmin.wiring.build``) keys the head and binds connection settings into
their sealed secrets right after this revision is applied (``services.legacy.adopt``).
Web sessions are dropped: their ids were stored as plain SHA-256, which no longer matches
anything (everyone signs in again). API tokens stay listed but no longer authenticate.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("keyed_from", sa.Integer(), nullable=True))
    op.execute("DELETE FROM web_sessions")


def downgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("keyed_from")
        batch_op.drop_column("mac")
