"""`jitadmin worker` as it was before the in-process SQLite write gate (for the before/after
comparison in docs/benchmarks.md): every transaction waits in SQLite's own busy handler."""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy import Engine, event

from jitadmin.db import session
from jitadmin.entrypoints.cli import main


def _busy_handler_only(engine: Engine, synchronous: str) -> None:
    event.listen(
        engine,
        "connect",
        lambda conn, record: session.prepare_sqlite_connection(conn, record, synchronous),
    )

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


if __name__ == "__main__":
    session._serialise_sqlite_writers = _busy_handler_only
    sys.argv = ["jitadmin", "worker"]
    main()
