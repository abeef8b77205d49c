"""Schema migrations with Alembic, driven from code (`jitadmin db upgrade`, serve, demo)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


# The revision from which token/session hashes and the audit chain are keyed and connection
# settings are bound into their sealed secrets; a database upgraded across it has data to adopt.
KEYED_HASHES_REVISION = "0009"


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate; returns the revision the database was at before (None: it was empty)."""
    config = alembic_config(engine)
    before = current(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return before


def predates_keyed_hashes(revision: str | None) -> bool:
    """Whether a database at ``revision`` held data written before ``KEYED_HASHES_REVISION``."""
    return revision is not None and revision < KEYED_HASHES_REVISION


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
