"""Migration 0010: a drift flag kept in ``last_error`` moves to ``access_missing_at``."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from jitadmin.db import migrate
from jitadmin.db.grant_repo import SqlGrantRepo
from jitadmin.db.session import make_engine

FLAGGED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
OLD_FLAG = (
    f"drift: admin access not found on the target at {FLAGGED_AT.isoformat()}; the grant stays "
    "active and still ends on time"
)
INSERT = text(
    "INSERT INTO grants (id, state, customer, identity_provider, ticket_id, requester, reason, "
    "duration_minutes, created_at, expires_at, activated_at, account, steps, attempts, "
    "last_error) VALUES (:id, 'active', 'pedroaviary', 'm365', '1', 'tech@msp.example', 'r', "
    "60, :at, :at, :at, '{}', '[]', 0, :error)"
)


def test_drift_flags_move_out_of_last_error_and_show_as_before(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate.upgrade(engine, "0009")
    with engine.begin() as conn:
        conn.execute(INSERT, {"id": "flagged", "at": FLAGGED_AT, "error": OLD_FLAG})
        conn.execute(INSERT, {"id": "failing", "at": FLAGGED_AT, "error": "HTTP 503"})
    migrate.upgrade(engine)
    with Session(engine) as session:
        repo = SqlGrantRepo(session)
        flagged, failing = repo.get("flagged"), repo.get("failing")
    assert flagged is not None and failing is not None
    assert flagged.last_error is None and flagged.access_missing_at == FLAGGED_AT
    assert flagged.shown_error == OLD_FLAG  # the API's last_error is unchanged
    assert failing.last_error == "HTTP 503" and failing.access_missing_at is None
    migrate.downgrade(engine, "0009")
    with engine.connect() as conn:
        rows = {r.id: r.last_error for r in conn.execute(text("SELECT id, last_error FROM grants"))}
    assert rows == {"flagged": OLD_FLAG, "failing": "HTTP 503"}
    engine.dispose()
