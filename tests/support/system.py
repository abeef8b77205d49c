"""A whole jitadmin (API + worker + database) against the emulators over HTTP."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from jitadmin.adapters.clock import ManualClock
from jitadmin.connectors import emulator_world
from jitadmin.emulators.runner import RunningServer, serve_in_thread
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.entrypoints.api.app import create_app
from jitadmin.entrypoints.demo import seed
from jitadmin.entrypoints.worker import Worker, attach_worker
from jitadmin.ports import Clock
from jitadmin.wiring import App, build

from support.config import METRICS_TOKEN, fast_settings
from support.psa_clients import vendor_notes
from support.waiting import wait_for


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
    world = emulator_world(psa_kind=psa)
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


def outbox_drained(system: System, grant_id: str) -> bool:
    """Every note of the grant is marked sent (not merely visible on the ticket)."""
    with system.app.ctx.uow() as uow:
        messages = uow.outbox.for_grant(grant_id)
    return bool(messages) and all(m.state == "sent" for m in messages)


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
