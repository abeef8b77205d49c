"""One test harness for every PSA in the connector registry: the same questions asked of each.

A ``Harness`` wraps one kind of PSA inside a running ``EmulatorWorld``: it builds that kind's
adapter (the registry's builder) against the emulator over real HTTP, flips the emulator's fault
switches, reads the journal, and reaches into the emulator's state (its ``TicketGroundTruth``)
only where a test needs ground truth (what is really stored) or a setup step a vendor API does
not offer (adding and closing tickets). Nothing here names a vendor.

A ``FakeHarness`` asks the same of ``jitadmin.testing.FakeTicketSystem`` in memory, for the
behaviour half of the contract (``support.ticket_contract.TicketSystemBehaviour``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from jitadmin.connectors import REGISTRY, Connector, emulator_world
from jitadmin.core.connectors import AdapterEnv, ConnectorFamily
from jitadmin.emulators.psa.common import JournalPaths, TicketGroundTruth
from jitadmin.emulators.seed import CUSTOMERS, SeedCustomer
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.ports import TicketSystem
from jitadmin.testing import FakeTicket, FakeTicketSystem

from support.config import TEST_EGRESS

# The PSAs jitadmin is built with (a test may register another for its own run).
KINDS = REGISTRY.catalog.ticket_systems
# The secret setting of each kind (what must never show in an error or a repr).
SECRET = {c.kind: c.spec.secret_fields[0] for c in REGISTRY.family(ConnectorFamily.TICKET_SYSTEM)}
# A customer without seed tickets: paging tests fill it without disturbing the others.
BIGCO = SeedCustomer(
    slug="bigco", name="Big Co", tenant_id="00000000-0000-4000-8000-000000000252",
    domain="bigco.onmicrosoft.com", psa_company_id=252, psa_identifier="BigCo", tickets=(),
)  # fmt: skip


@dataclass
class Sleeps:
    """Stands in for time.sleep inside an adapter: records waits instead of waiting."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def running_world(**options: Any) -> Iterator[EmulatorWorld]:
    """A started ``EmulatorWorld`` (``options`` as its fields), stopped after; for fixtures."""
    running = emulator_world(**options)
    running.start()
    yield running
    running.stop()


def fresh_harness(kind: str, world: EmulatorWorld) -> Iterator[Harness]:
    """A ``Harness`` with the switches and journal cleared before and after; for fixtures."""
    harness = Harness(kind, world)
    harness.reset()
    yield harness
    harness.reset()


class AdminSwitches:
    """The admin API every PSA emulator offers under ``admin_url``: fault switches, journal."""

    @property
    def admin_url(self) -> str:
        raise NotImplementedError

    def faults(self, **settings: Any) -> None:
        httpx.put(f"{self.admin_url}/faults", json=settings).raise_for_status()

    def reset(self) -> None:
        httpx.delete(f"{self.admin_url}/faults").raise_for_status()
        httpx.delete(f"{self.admin_url}/requests").raise_for_status()

    def clear_journal(self) -> None:
        httpx.delete(f"{self.admin_url}/requests").raise_for_status()

    def journal(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.admin_url}/requests")
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries


@dataclass
class Harness(AdminSwitches):
    kind: str
    world: EmulatorWorld

    @property
    def connector(self) -> Connector:
        return REGISTRY.get(self.kind, ConnectorFamily.TICKET_SYSTEM)

    @property
    def psa(self) -> dict[str, Any]:
        return self.world.psa_settings(self.kind)

    @property
    def admin_url(self) -> str:
        return str(self.psa["admin_url"])

    @property
    def secret_field(self) -> str:
        return self.connector.spec.secret_fields[0]

    @property
    def secret(self) -> str:
        return str(self.psa[self.secret_field])

    @property
    def paged(self) -> bool:
        return True  # a vendor's listing comes a page per request

    @property
    def paths(self) -> JournalPaths:
        emulator = self.connector.emulator
        assert emulator is not None
        return emulator.paths

    @property
    def truth(self) -> TicketGroundTruth:
        return self.world.ground_truth(self.kind)

    # --- the adapter --------------------------------------------------------------------

    def adapter(self, *, secret: str | None = None, **overrides: Any) -> TicketSystem:
        """This kind's adapter on the emulator. ``overrides`` naming a setting (``base_url``)
        replace it; the rest are adapter options. ``sleep`` records instead of sleeping."""
        spec = self.connector.spec
        settings = {k: v for k, v in self.psa.items() if k in spec.fields}
        settings |= {k: overrides.pop(k) for k in list(overrides) if k in spec.fields}
        secrets = {self.secret_field: secret if secret is not None else self.secret}
        options: dict[str, Any] = {"sleep": Sleeps(), **overrides}
        env = AdapterEnv(egress=TEST_EGRESS)
        return REGISTRY.ticket_system(self.kind, settings, secrets, env, **options)

    # --- switches and journal (the rest in AdminSwitches) ----------------------------------

    def drop_after_commit(self, count: int = 1, mode: str = "500") -> None:
        body: dict[str, Any] = {"count": count}
        if self.paths.drop_modes != ("500",):
            body["mode"] = mode  # an emulator whose switch only answers 500 takes no mode
        httpx.post(f"{self.admin_url}/drop_after_commit", json=body).raise_for_status()

    def requests(self, method: str, contains: str) -> list[dict[str, Any]]:
        """Journal entries of ``method`` whose path contains ``contains`` (case-insensitive)."""
        return [
            e
            for e in self.journal()
            if e["method"] == method and contains.lower() in e["path"].lower()
        ]

    @property
    def ticket_path(self) -> str:
        """What the single-ticket GET's path contains, for fault ``match`` patterns."""
        return self.paths.ticket

    @property
    def note_post_path(self) -> str:
        return self.paths.note_post

    def note_posts(self) -> list[dict[str, Any]]:
        return self.requests("POST", self.note_post_path)

    def listing_requests(self) -> list[dict[str, Any]]:
        """Journal entries that list tickets (one per page)."""
        method, end = self.paths.listing
        end = end.lower()
        return [
            e
            for e in self.requests(method, end)
            if e["path"].lower().endswith((end, end + "/next"))
        ]

    # --- ground truth and setup (the emulator's own state) --------------------------------

    def stored_notes(self, ticket_id: str) -> list[tuple[str, str]]:
        """``(id, text)`` of every note really stored on the ticket, oldest first."""
        return self.truth.stored_notes(ticket_id)

    def add_ticket(self, company_id: int, summary: str, *, closed: bool = False) -> int:
        return self.truth.add_ticket(company_id, summary, closed=closed)

    def close_ticket(self, ticket_id: int) -> None:
        """Close a ticket in the PSA, as a technician would."""
        self.truth.close_ticket(ticket_id)

    def seed_note(self, ticket_id: int, text: str) -> None:
        """A note written by someone else (no faults, no journal)."""
        self.truth.seed_note(ticket_id, text)


@dataclass
class FakeHarness:
    """``FakeTicketSystem`` holding the seed customers' tickets: its own state is the ground
    truth, and its call journal (``faults.calls``) stands in for the requests."""

    customers: Sequence[SeedCustomer] = CUSTOMERS
    kind: str = "fake-psa"  # its TicketExpectations are in support.psa_expectations

    def __post_init__(self) -> None:
        self.system = FakeTicketSystem(self.kind)
        for customer in self.customers:
            for t in customer.tickets:
                company = str(customer.psa_company_id)
                self.system.tickets[str(t.id)] = FakeTicket(str(t.id), t.summary, company, t.closed)

    @property
    def paged(self) -> bool:
        return False  # one call answers a whole listing

    def adapter(self, **overrides: Any) -> TicketSystem:
        if overrides:
            raise TypeError(f"the fake takes no settings or options: {sorted(overrides)}")
        return self.system

    def add_ticket(self, company_id: int, summary: str, *, closed: bool = False) -> int:
        return int(self.system.add_ticket(str(company_id), summary, closed=closed))

    def close_ticket(self, ticket_id: int) -> None:
        self.system.close_ticket(str(ticket_id))

    def seed_note(self, ticket_id: int, text: str) -> None:
        self.system.seed_note(str(ticket_id), text)

    def stored_notes(self, ticket_id: str) -> list[tuple[str, str]]:
        return list(self.system.tickets[ticket_id].notes)

    def _calls(self, operation: str) -> list[dict[str, Any]]:
        # The fake sends nothing: a call has no body to show.
        return [{"method": c, "body": None} for c in self.system.faults.calls if c == operation]

    def note_posts(self) -> list[dict[str, Any]]:
        return self._calls("add_note")

    def listing_requests(self) -> list[dict[str, Any]]:
        return self._calls("list_open_tickets")
