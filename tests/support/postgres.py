"""Fresh databases on the test PostgreSQL server (``scripts/postgres.sh start`` runs it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from support.config import REPO

POSTGRES_ENV_FILE = REPO / ".run" / "postgres.env"
BACKENDS = ("sqlite", "postgresql")


def postgres_server_url() -> str:
    """The test server's admin URL; fails (never skips) when no server was started."""
    if url := os.environ.get("JITADMIN_TEST_POSTGRES_URL"):
        return url
    if not POSTGRES_ENV_FILE.exists():
        pytest.fail(
            "no PostgreSQL for the tests: run `bash scripts/postgres.sh start` "
            f"({POSTGRES_ENV_FILE} is missing; make test starts it)"
        )
    values = dict(
        line.split("=", 1) for line in POSTGRES_ENV_FILE.read_text().split() if "=" in line
    )
    return values["JITADMIN_TEST_POSTGRES_URL"]


@contextmanager
def fresh_postgres_database(server_url: str | None = None) -> Iterator[str]:
    """A new, empty database on the server for one test; dropped (forcibly) afterwards."""
    admin_url = server_url or postgres_server_url()
    name = f"jit_{uuid.uuid4().hex[:12]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
