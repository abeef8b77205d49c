"""Upgrading a database written before keyed hashes (revision 0008 and older).

Its connection secrets were sealed without their settings, its audit chain is plain SHA-256
and its head carries no MAC. The upgrade binds the settings as they stand, keys the head and
records both in one audit event; from then on an edited setting or a recomputed old entry is
found, exactly as for data written afterwards.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select, update

from jitadmin.adapters.secretbox import AesGcmSecretBox
from jitadmin.core.errors import ConnectionSettingsAlteredError
from jitadmin.core.events import GENESIS_HASH, AuditEvent, chain_hash
from jitadmin.db import migrate
from jitadmin.db.session import make_engine
from jitadmin.db.tables import AuditHeadRow, AuditRow, ConnectionRow, CustomerRow
from jitadmin.services import admin
from jitadmin.services.context import connection_context
from jitadmin.wiring import build

from support.config import SECRET_KEY, fast_settings

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SETTINGS = {"tenant_id": "pedro.example", "client_id": "app"}
SECRET = {"client_secret": "legacy-secret-" + "z" * 20}


def _table(row: type[Any]) -> Table:
    return cast(Table, row.__table__)


def _legacy_database(url: str) -> list[str]:
    """A 0008 database as the previous version left it; returns its two entries' hashes."""
    engine = make_engine(url)
    migrate.upgrade(engine, "0008")
    sealed = AesGcmSecretBox(SECRET_KEY).seal(
        json.dumps(SECRET), connection_context("pedro", "m365")
    )
    events = [
        AuditEvent("customer.created", "root", AT, customer="pedro", data={"name": "Pedro"}),
        AuditEvent("connection.saved", "root", AT, customer="pedro", data={"kind": "m365"}),
    ]
    hashes, previous = [], GENESIS_HASH
    with engine.begin() as conn:
        conn.execute(
            insert(_table(CustomerRow)).values(
                id=1, slug="pedro", name="Pedro", psa_company_id="1", domain_prefix="pedro",
                created_at=AT,
            )
        )  # fmt: skip
        conn.execute(
            insert(_table(ConnectionRow)).values(
                customer_id=1, kind="m365", settings=SETTINGS, secret_sealed=sealed, updated_at=AT
            )
        )
        for seq, event in enumerate(events, start=1):
            digest = chain_hash(previous, event, seq)
            conn.execute(
                insert(_table(AuditRow)).values(
                    seq=seq, kind=event.kind, actor=event.actor, at=event.at,
                    grant_id=None, customer=event.customer, data=event.data,
                    prev_hash=previous, hash=digest,
                )
            )  # fmt: skip
            hashes.append(digest)
            previous = digest
        head = _table(AuditHeadRow)
        conn.execute(insert(head).values({head.c.id: 1, head.c.seq: 2, head.c.hash: previous}))
    engine.dispose()
    return hashes


def test_an_old_database_is_adopted_once_and_then_protected(
    tmp_path: Path, database_url: str
) -> None:
    hashes = _legacy_database(database_url)
    app = build(fast_settings(tmp_path, database_url=database_url))
    try:
        ctx = app.ctx
        assert admin.verify_audit(ctx) == (3, None)
        with ctx.uow() as uow:
            adopted = uow.audit.entries(limit=10)[-1]
            record = uow.connections.get("pedro", "m365")
        assert adopted.kind == "security.keyed_hashes_adopted"
        assert adopted.prev_hash == hashes[-1]  # the old hashes are kept, and pinned
        assert adopted.data["audit_keyed_from"] == 3
        assert adopted.data["connections_bound"] == [
            {"customer": "pedro", "kind": "m365", "settings": SETTINGS}
        ]
        assert record is not None and ctx.open_secrets(record) == SECRET

        # A later start is an ordinary start: nothing is adopted again.
        again = build(fast_settings(tmp_path, database_url=database_url))
        assert admin.verify_audit(again.ctx) == (3, None)
        again.close()

        # An edited setting now makes the secret unusable...
        table = _table(ConnectionRow)
        with app.database.engine.begin() as conn:
            conn.execute(update(table).values(settings={**SETTINGS, "tenant_id": "evil.example"}))
        with ctx.uow() as uow:
            edited = uow.connections.get("pedro", "m365")
        assert edited is not None
        with pytest.raises(ConnectionSettingsAlteredError, match="settings were altered"):
            ctx.open_secrets(edited)

        # ...and the old, plain part of the chain cannot be recomputed either.
        events = _table(AuditRow)
        with app.database.engine.begin() as conn:
            rows = list(conn.execute(select(events).where(events.c.seq <= 2).order_by("seq")))
            previous = GENESIS_HASH
            for row in rows:
                event = AuditEvent(row.kind, "mallory", row.at, None, row.customer, dict(row.data))
                digest = chain_hash(previous, event, row.seq)
                conn.execute(
                    update(events)
                    .where(events.c.seq == row.seq)
                    .values(actor="mallory", prev_hash=previous, hash=digest)
                )
                previous = digest
        assert admin.verify_audit(ctx) == (2, 3)
    finally:
        app.close()
