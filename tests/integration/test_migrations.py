from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from jitadmin.db import migrate
from jitadmin.db.session import make_engine


def test_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(engine)
    head = migrate.current(engine)
    assert head is not None
    tables = set(inspect(engine).get_table_names())
    assert {
        "grants",
        "grant_events",
        "outbox",
        "customers",
        "connections",
        "users",
        "api_tokens",
    } <= tables
    migrate.downgrade(engine, "base")
    assert migrate.current(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert migrate.current(engine) == head
