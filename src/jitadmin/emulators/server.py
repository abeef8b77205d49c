"""All emulators behind one loopback port: Graph under /graph, the PSAs under /connectwise,
/autotask and /halopsa. ``psa_kind`` picks the PSA that ``psa_settings()`` describes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from jitadmin.emulators.graph.app import create_graph_app
from jitadmin.emulators.psa.autotask.app import GLOBAL_ROOT as AT_GLOBAL_ROOT
from jitadmin.emulators.psa.autotask.app import create_autotask_app
from jitadmin.emulators.psa.connectwise.app import create_connectwise_app
from jitadmin.emulators.psa.halopsa.app import create_halopsa_app
from jitadmin.emulators.runner import RunningServer, serve_in_thread
from jitadmin.emulators.seed import CUSTOMERS, SeedCredentials, SeedCustomer

PSA_KINDS = ("connectwise", "autotask", "halopsa")


@dataclass
class EmulatorWorld:
    customers: tuple[SeedCustomer, ...] = CUSTOMERS
    creds: SeedCredentials = field(default_factory=SeedCredentials)
    psa_kind: str = "connectwise"

    def __post_init__(self) -> None:
        if self.psa_kind not in PSA_KINDS:
            raise ValueError(f"psa_kind must be one of {', '.join(PSA_KINDS)}")
        self.graph_app, self.graph = create_graph_app(self.customers, self.creds)
        self.cw_app, self.connectwise = create_connectwise_app(self.customers, self.creds)
        self.app = FastAPI(title="jitadmin emulators", docs_url=None, redoc_url=None)
        self.app.mount("/graph", self.graph_app)
        self.app.mount("/connectwise", self.cw_app)
        self.at_app, self.autotask = create_autotask_app(self.customers, self.creds)
        self.app.mount("/autotask", self.at_app)
        self.halo_app, self.halopsa = create_halopsa_app(self.customers, self.creds)
        self.app.mount("/halopsa", self.halo_app)
        self.server: RunningServer | None = None

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
        if kind == "autotask":
            root = f"{self.url}/autotask"
            return {
                "kind": "autotask",
                "base_url": f"{root}{AT_GLOBAL_ROOT}",
                "admin_url": f"{root}/_admin",
                "username": self.creds.at_username,
                "secret": self.creds.at_secret,
                "integration_code": self.creds.at_integration_code,
            }
        if kind == "halopsa":
            root = f"{self.url}/halopsa"
            return {
                "kind": "halopsa",
                "base_url": root,
                "auth_url": f"{root}/auth",
                "admin_url": f"{root}/_admin",
                "client_id": self.creds.halo_client_id,
                "client_secret": self.creds.halo_client_secret,
                "tenant": self.creds.halo_tenant,
            }
        root = f"{self.url}/connectwise"
        return {
            "kind": "connectwise",
            "base_url": f"{root}/v4_6_release/apis/3.0",
            "admin_url": f"{root}/_admin",
            "company_id": self.creds.cw_company_id,
            "public_key": self.creds.cw_public_key,
            "private_key": self.creds.cw_private_key,
            "client_id": self.creds.cw_client_id,
        }

    def describe(self) -> dict[str, Any]:
        """The ``emulators`` object of demo.json (its names are a public interface)."""
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
