"""All emulators behind one loopback port: Graph under /graph, each PSA emulator under /{kind}.

The PSA emulators are given (``psa_emulators``; ``jitadmin.connectors.emulator_world`` passes
every registered one); ``psa_kind`` picks the PSA that ``psa_settings()`` describes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from jitadmin.emulators.graph.app import create_graph_app
from jitadmin.emulators.psa.common import PsaEmulator, TicketGroundTruth
from jitadmin.emulators.runner import RunningServer, serve_in_thread
from jitadmin.emulators.seed import CUSTOMERS, SeedCredentials, SeedCustomer


@dataclass
class EmulatorWorld:
    psa_emulators: Sequence[PsaEmulator] = ()
    customers: tuple[SeedCustomer, ...] = CUSTOMERS
    creds: SeedCredentials = field(default_factory=SeedCredentials)
    psa_kind: str = ""  # default: the first PSA emulator

    def __post_init__(self) -> None:
        self.emulators = {e.kind: e for e in self.psa_emulators}
        self.psa_kind = self.psa_kind or next(iter(self.emulators), "")
        if self.emulators and self.psa_kind not in self.emulators:
            raise ValueError(f"psa_kind must be one of {', '.join(self.emulators)}")
        self.graph_app, self.graph = create_graph_app(self.customers, self.creds)
        self.app = FastAPI(title="jitadmin emulators", docs_url=None, redoc_url=None)
        self.app.mount("/graph", self.graph_app)
        self._psa_states: dict[str, Any] = {}
        for kind, emulator in self.emulators.items():
            app, self._psa_states[kind] = emulator.create(self.customers, self.creds)
            self.app.mount(f"/{kind}", app)
        self.server: RunningServer | None = None

    def psa_state(self, kind: str | None = None) -> Any:
        """The state of the PSA emulator ``kind`` (default ``psa_kind``): its ground truth."""
        return self._psa_states[kind or self.psa_kind]

    def ground_truth(self, kind: str | None = None) -> TicketGroundTruth:
        truth: TicketGroundTruth = self.psa_state(kind)
        return truth

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.server = serve_in_thread(self.app, host, port)
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None, "start() first"
        return self.server.url

    def graph_settings(self, customer: SeedCustomer) -> dict[str, Any]:
        root = f"{self.url}/graph"
        return {
            "base_url": f"{root}/v1.0",
            "authority_url": f"{root}/login",
            "token_url": f"{root}/login/{customer.tenant_id}/oauth2/v2.0/token",
            "admin_url": f"{root}/_admin",
            "tenant_id": customer.tenant_id,
            "client_id": self.creds.graph_client_id,
            "client_secret": self.creds.graph_client_secret,
            "domain": customer.domain,
        }

    def psa_settings(self, kind: str | None = None) -> dict[str, Any]:
        """Exactly the body PUT /psa takes for ``kind`` (default: ``psa_kind``), + admin_url."""
        kind = kind or self.psa_kind
        return self.emulators[kind].settings(f"{self.url}/{kind}", self.creds)

    def describe(self) -> dict[str, Any]:
        """The ``emulators`` object of demo.json (a public interface: tools read these names)."""
        first = self.customers[0]
        return {
            "graph": self.graph_settings(first),
            "graph_tenants": {c.slug: self.graph_settings(c) for c in self.customers},
            "psa": self.psa_settings(),
            "customers": [
                {
                    "slug": c.slug,
                    "name": c.name,
                    "psa_company_id": str(c.psa_company_id),
                    "tenant_id": c.tenant_id,
                    "domain": c.domain,
                    "open_ticket_ids": c.open_ticket_ids,
                    "closed_ticket_ids": c.closed_ticket_ids,
                }
                for c in self.customers
            ],
        }
