"""The demo world: the same customers, tenants and tickets in every emulator.

Customer ``pedroaviary`` ("Pedro Aviary", tenant pedroaviary.onmicrosoft.com,
at least 3 open tickets and 1 closed) and a second customer with tickets of its own.
Credentials are random per process so nothing secret is ever committed.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeedTicket:
    id: int
    summary: str
    status: str
    closed: bool


@dataclass(frozen=True)
class SeedCustomer:
    slug: str
    name: str
    tenant_id: str
    domain: str
    psa_company_id: int
    psa_identifier: str
    tickets: tuple[SeedTicket, ...]

    @property
    def open_ticket_ids(self) -> list[str]:
        return [str(t.id) for t in self.tickets if not t.closed]

    @property
    def closed_ticket_ids(self) -> list[str]:
        return [str(t.id) for t in self.tickets if t.closed]


@dataclass(frozen=True)
class SeedCredentials:
    graph_client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    graph_client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    cw_company_id: str = "mspdemo"
    cw_public_key: str = field(default_factory=lambda: secrets.token_hex(8))
    cw_private_key: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    cw_client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Autotask: an API-only user (email form), its secret and the integration's tracking code.
    at_username: str = "jit-api@mspdemo.example"
    at_secret: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    at_integration_code: str = field(default_factory=lambda: secrets.token_hex(14).upper()[:27])
    # HaloPSA: a client-credentials API application on a hosted tenant.
    halo_client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    halo_client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    halo_tenant: str = "mspdemo"


CUSTOMERS: tuple[SeedCustomer, ...] = (
    SeedCustomer(
        slug="pedroaviary",
        name="Pedro Aviary",
        tenant_id="9a1f0c3e-1111-4222-8333-444455556666",
        domain="pedroaviary.onmicrosoft.com",
        psa_company_id=250,
        psa_identifier="PedroAviary",
        tickets=(
            SeedTicket(48211, "Install line-of-business app on FS01", "In Progress", False),
            SeedTicket(48212, "New starter: mailbox and licences", "New", False),
            SeedTicket(48213, "Conditional Access review", "Waiting on Client", False),
            SeedTicket(48190, "Printer offline in reception", "Closed", True),
        ),
    ),
    SeedCustomer(
        slug="northwind",
        name="Northwind Traders",
        tenant_id="3c7d2b10-aaaa-4bbb-8ccc-ddddeeeeffff",
        domain="northwindtraders.onmicrosoft.com",
        psa_company_id=251,
        psa_identifier="Northwind",
        tickets=(
            SeedTicket(48301, "Rotate break-glass credentials", "In Progress", False),
            SeedTicket(48302, "Exchange Online retention policy", "New", False),
            SeedTicket(48299, "Laptop replacement", "Closed", True),
        ),
    ),
)
