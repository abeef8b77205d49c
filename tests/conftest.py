"""Shared fixtures: a whole jitadmin (API + worker + database) against the emulators over HTTP.

Fixtures only: the helpers they are built from live in ``tests/support`` (import them from
there, never from this file). The database-facing fixtures (``system``, ``clocked_system``,
``database_url``) run on both backends: embedded SQLite and a real PostgreSQL server (a fresh
database per test on the server that ``scripts/postgres.sh start`` runs;
``JITADMIN_TEST_POSTGRES_URL`` points elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jitadmin.adapters.clock import ManualClock

from support.ad import SambaDc, load_samba_dc
from support.postgres import BACKENDS, fresh_postgres_database
from support.services import ServiceWorld, service_world
from support.system import System, start_system, stop_system


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (URL) for this test."""
    with fresh_postgres_database() as url:
        yield url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses a database fixture once per backend.

    Tests marked ``slow`` (a real minute of waiting) run on SQLite only, unless they choose
    backends themselves with ``@pytest.mark.parametrize("backend", ...)``.
    """
    if "backend" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if "backend" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    slow = metafunc.definition.get_closest_marker("slow") is not None
    metafunc.parametrize("backend", BACKENDS[:1] if slow else BACKENDS)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which database this test runs on (parametrized by pytest_generate_tests above)."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """The database URL of ``backend``: a file under tmp_path, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'jitadmin.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def system(tmp_path: Path, database_url: str) -> Iterator[System]:
    running = start_system(tmp_path, database_url=database_url)
    yield running
    stop_system(running)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def clocked_system(tmp_path: Path, clock: ManualClock, database_url: str) -> Iterator[System]:
    running = start_system(tmp_path, clock=clock, database_url=database_url)
    yield running
    stop_system(running)


@pytest.fixture(scope="session")
def samba_dc() -> SambaDc:
    """The test DC; fails (never skips) when scripts/samba-dc.sh has not started one."""
    return load_samba_dc()


@pytest.fixture(scope="session")
def services_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database of a freshly seeded ``services`` world, made once and copied per test."""
    directory = tmp_path_factory.mktemp("services-template")
    service_world(directory).close()
    return directory / "jitadmin.db"


@pytest.fixture
def services(tmp_path: Path, services_template: Path) -> Iterator[ServiceWorld]:
    """The services on the fakes of jitadmin.testing, over SQLite in tmp_path (tests/unit)."""
    world = service_world(tmp_path, services_template)
    yield world
    world.close()
