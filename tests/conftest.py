"""Shared fixtures: a whole jitadmin (API + worker + SQLite) against the emulators over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.runner import RunningServer, serve_in_thread
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
        "worker_lease_seconds": 5.0,
        "worker_max_idle_seconds": 0.5,
        "retry_base_seconds": 0.05,
        "retry_cap_seconds": 0.5,
        "graph_retry_budget_seconds": 2.0,
        "graph_backoff_base_seconds": 0.05,
        "revoke_max_attempts": 3,
        "revoke_failed_interval_seconds": 0.5,
        "provision_max_attempts": 3,
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


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    running = start_system(tmp_path)
    yield running
    stop_system(running)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def clocked_system(tmp_path: Path, clock: ManualClock) -> Iterator[System]:
    running = start_system(tmp_path, clock=clock)
    yield running
    stop_system(running)


# --- The Samba AD DC (tests/ad_support.py), started by scripts/samba-dc.sh ----------------
from ad_support import SambaDc, load_samba_dc  # noqa: E402


@pytest.fixture(scope="session")
def samba_dc() -> SambaDc:
    """The test DC; fails (never skips) when scripts/samba-dc.sh has not started one."""
    return load_samba_dc()
