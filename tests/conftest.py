"""Shared fixtures: a whole jitadmin (API + worker + database) against the emulators over HTTP.

The database-facing fixtures (``system``, ``clocked_system``, ``database_url``) run on both
backends: embedded SQLite and a real PostgreSQL server (a fresh database per test on the server
that ``scripts/postgres.sh start`` runs; ``JITADMIN_TEST_POSTGRES_URL`` points elsewhere).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from jitadmin.adapters.clock import ManualClock
from jitadmin.core.egress import EgressPolicy
from jitadmin.emulators.runner import RunningServer, serve_in_thread
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.entrypoints.api.app import create_app
from jitadmin.entrypoints.demo import seed
from jitadmin.entrypoints.worker import Worker, attach_worker
from jitadmin.ports import Clock
from jitadmin.settings import Settings
from jitadmin.wiring import App, build
from psa_clients import vendor_notes

T = TypeVar("T")
SECRET_KEY = "test-secret-key-" + "x" * 32
METRICS_TOKEN = "test-metrics-token-" + "m" * 16
REPO = Path(__file__).resolve().parents[1]
POSTGRES_ENV_FILE = REPO / ".run" / "postgres.env"
BACKENDS = ("sqlite", "postgresql")
# The emulators, the Samba DC and every test server listen on loopback, which the egress policy
# refuses unless listed: every Settings the tests build (in-process, or in a worker or CLI
# subprocess inheriting this environment) lists it. Attack tests pass egress_allow=[] instead.
TEST_EGRESS_ALLOW = ["127.0.0.0/8", "::1", "localhost"]
os.environ.setdefault("JITADMIN_EGRESS_ALLOW", ",".join(TEST_EGRESS_ALLOW))
# The same policy for adapters a test builds itself.
TEST_EGRESS = EgressPolicy.parse(TEST_EGRESS_ALLOW)


def wait_for(check: Callable[[], T | None], *, timeout: float = 30.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def fast_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path / 'jitadmin.db'}",
        "secret_key": SecretStr(SECRET_KEY),
        "metrics_token": SecretStr(METRICS_TOKEN),
        "worker_lease_seconds": 5.0,
        "worker_max_idle_seconds": 0.5,
        "retry_base_seconds": 0.05,
        "retry_cap_seconds": 0.5,
        "graph_retry_budget_seconds": 2.0,
        "graph_backoff_base_seconds": 0.05,
        "revoke_max_attempts": 3,
        "revoke_failed_interval_seconds": 0.5,
        "provision_max_attempts": 3,
        "egress_allow": TEST_EGRESS_ALLOW,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class System:
    world: EmulatorWorld
    app: App
    worker: Worker | None
    server: RunningServer
    users: dict[str, dict[str, str]]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, role: str | None = "technician") -> httpx.Client:
        headers = {} if role is None else {"Authorization": f"Bearer {self.users[role]['token']}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)

    def metrics(self) -> str:
        """The Prometheus text of /metrics, scraped with the metrics token."""
        response = httpx.get(
            f"{self.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
        )
        response.raise_for_status()
        return response.text

    def graph_token(self, tenant_id: str) -> str:
        settings = self.world.graph_settings(self.world.customers[0])
        response = httpx.post(
            f"{self.world.url}/graph/login/{tenant_id}/oauth2/v2.0/token",
            data={
                "client_id": settings["client_id"],
                "client_secret": settings["client_secret"],
                "scope": "https://graph.microsoft.com/.default",
                "grant_type": "client_credentials",
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def graph(self, tenant_id: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.world.url}/graph/v1.0",
            headers={"Authorization": f"Bearer {self.graph_token(tenant_id)}"},
            timeout=30,
        )

    def grantee_graph(self, username: str, password: str) -> httpx.Client:
        """Graph as the temporary account itself sees it: signed in with its own password."""
        customer = self.world.customers[0]
        settings = self.world.graph_settings(customer)
        response = httpx.post(
            f"{self.world.url}/graph/login/{customer.tenant_id}/oauth2/v2.0/token",
            data={"grant_type": "password", "client_id": settings["client_id"],
                  "scope": "https://graph.microsoft.com/.default",
                  "username": username, "password": password},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        return httpx.Client(
            base_url=f"{self.world.url}/graph/v1.0",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def cw(self) -> httpx.Client:
        psa = self.world.psa_settings()
        return httpx.Client(
            base_url=psa["base_url"],
            auth=(f"{psa['company_id']}+{psa['public_key']}", psa["private_key"]),
            headers={"clientId": psa["client_id"]},
            timeout=30,
        )

    def ticket_notes(self, ticket_id: str) -> list[str]:
        """The ticket's notes, oldest first, read through the configured PSA's vendor API."""
        return vendor_notes(self.world.psa_settings(), ticket_id)

    def grant(self, grant_id: str) -> dict[str, Any]:
        with self.client("admin") as api:
            response = api.get(f"/grants/{grant_id}")
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    def wait_state(self, grant_id: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(
            lambda: g if (g := self.grant(grant_id))["state"] == state else None,
            timeout=timeout,
            what=f"grant {grant_id} to reach {state}",
        )


def start_system(
    tmp_path: Path,
    *,
    clock: Clock | None = None,
    with_worker: bool = True,
    psa: str = "connectwise",
    **overrides: Any,
) -> System:
    world = EmulatorWorld(psa_kind=psa)
    world.start()
    app = build(fast_settings(tmp_path, **overrides), clock=clock)
    users = seed(app, world)
    worker = attach_worker(app) if with_worker else None
    if worker is not None:
        if isinstance(clock, ManualClock):
            clock.on_advance(worker.wake)
        worker.start()
    server = serve_in_thread(create_app(app))
    return System(world, app, worker, server, users)


def stop_system(system: System) -> None:
    system.server.stop()
    if system.worker is not None:
        system.worker.stop()
    system.world.stop()
    system.app.close()


# --- Databases: SQLite beside a real PostgreSQL server --------------------------------------


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


# --- The Samba AD DC (tests/ad_support.py), started by scripts/samba-dc.sh ----------------
from ad_support import SambaDc, load_samba_dc  # noqa: E402


@pytest.fixture(scope="session")
def samba_dc() -> SambaDc:
    """The test DC; fails (never skips) when scripts/samba-dc.sh has not started one."""
    return load_samba_dc()


def demo_ready(url: str, demo_json: Path) -> dict[str, Any] | None:
    """demo.json, once `jitadmin demo` has written it and answers on ``url``; else None."""
    if not demo_json.exists():
        return None
    try:
        httpx.get(f"{url}/healthz", timeout=2).raise_for_status()
    except httpx.HTTPError:
        return None
    document: dict[str, Any] = json.loads(demo_json.read_text())
    return document


# --- emulator fault switches (outage suites) ---------------------------------------------------


# Latency that "hangs" a call: the emulator lets it go as soon as the faults are cleared.
HELD_MS = 120_000


def set_faults(admin_url: str, **settings: Any) -> None:
    """Switch an emulator's faults on (``settings``) or, with none, all off."""
    if settings:
        httpx.put(f"{admin_url}/faults", json=settings).raise_for_status()
    else:
        httpx.delete(f"{admin_url}/faults").raise_for_status()


def graph_admin(system: System) -> str:
    """The Graph emulator's admin URL (the first seeded customer's tenant)."""
    return str(system.world.graph_settings(CUSTOMERS[0])["admin_url"])


def psa_admin(system: System) -> str:
    return str(system.world.psa_settings()["admin_url"])


def outbox_drained(system: System, grant_id: str) -> bool:
    """Every note of the grant is marked sent (not merely visible on the ticket)."""
    with system.app.ctx.uow() as uow:
        messages = uow.outbox.for_grant(grant_id)
    return bool(messages) and all(m.state == "sent" for m in messages)
