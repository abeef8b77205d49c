"""One test harness per PSA: the same questions asked of ConnectWise, Autotask and HaloPSA.

A ``Harness`` wraps one kind of PSA inside a running ``EmulatorWorld``: it builds that kind's
adapter against the emulator over real HTTP, flips the emulator's fault switches, reads the
journal, and reaches into the emulator's state only where a test needs ground truth (what is
really stored) or a setup step a vendor API does not offer (adding and closing tickets).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from jitadmin.adapters.psa.autotask.adapter import AutotaskTickets
from jitadmin.adapters.psa.connectwise.adapter import ConnectWiseTickets
from jitadmin.adapters.psa.halopsa.adapter import HaloTickets
from jitadmin.emulators.psa.autotask.state import COMPLETE
from jitadmin.emulators.psa.halopsa.state import CLOSED
from jitadmin.emulators.seed import SeedCustomer
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.ports import TicketSystem

from support.config import TEST_EGRESS

KINDS = ("connectwise", "autotask", "halopsa")
# The secret setting of each kind (what must never show in an error or a repr).
SECRET = {"connectwise": "private_key", "autotask": "secret", "halopsa": "client_secret"}
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
    running = EmulatorWorld(**options)
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
    def psa(self) -> dict[str, Any]:
        return self.world.psa_settings(self.kind)

    @property
    def admin_url(self) -> str:
        return str(self.psa["admin_url"])

    @property
    def secret(self) -> str:
        return str(self.psa[SECRET[self.kind]])

    # --- the adapter --------------------------------------------------------------------

    def adapter(self, *, secret: str | None = None, **overrides: Any) -> TicketSystem:
        """This kind's adapter on the emulator; ``sleep`` records instead of sleeping."""
        p = self.psa
        key = secret if secret is not None else self.secret
        options: dict[str, Any] = {"sleep": Sleeps(), "egress": TEST_EGRESS, **overrides}
        if self.kind == "connectwise":
            base = options.pop("base_url", p["base_url"])
            return ConnectWiseTickets(
                base, p["company_id"], p["public_key"], key, p["client_id"], **options
            )
        if self.kind == "autotask":
            base = options.pop("base_url", p["base_url"])
            return AutotaskTickets(base, p["username"], key, p["integration_code"], **options)
        base = options.pop("base_url", p["base_url"])
        auth = options.pop("auth_url", p["auth_url"])
        tenant = options.pop("tenant", p["tenant"])
        return HaloTickets(base, auth, p["client_id"], key, tenant, **options)

    # --- switches and journal (the rest in AdminSwitches) ----------------------------------

    def drop_after_commit(self, count: int = 1, mode: str = "500") -> None:
        body: dict[str, Any] = {"count": count}
        if self.kind != "connectwise":
            body["mode"] = mode  # ConnectWise's switch only answers 500
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
        return {"connectwise": "service/tickets", "autotask": "/Tickets/", "halopsa": "/api/"}[
            self.kind
        ]

    @property
    def note_post_path(self) -> str:
        # Lower case for Halo: its emulator matches faults on the case-folded path.
        return {"connectwise": "/notes", "autotask": "/Notes", "halopsa": "/actions"}[self.kind]

    def note_posts(self) -> list[dict[str, Any]]:
        return self.requests("POST", self.note_post_path)

    def listing_requests(self) -> list[dict[str, Any]]:
        """Journal entries that list tickets (one per page)."""
        method, end = {
            "connectwise": ("GET", "/service/tickets"),
            "autotask": ("POST", "/tickets/query"),
            "halopsa": ("GET", "/api/tickets"),
        }[self.kind]
        return [
            e
            for e in self.requests(method, end)
            if e["path"].lower().endswith((end, end + "/next"))
        ]

    # --- ground truth and setup (the emulator's own state) --------------------------------

    def stored_notes(self, ticket_id: str) -> list[tuple[str, str]]:
        """``(id, text)`` of every note really stored on the ticket, oldest first."""
        w = self.world
        if self.kind == "connectwise":
            return [(str(n["id"]), n["text"]) for n in w.connectwise.notes(ticket_id)]
        if self.kind == "autotask":
            notes = sorted(w.autotask.notes(ticket_id), key=lambda n: int(n["id"]))
            return [(str(n["id"]), n["description"]) for n in notes]
        return [(str(a["id"]), a["note"]) for a in w.halopsa.actions(ticket_id)]

    def add_ticket(self, company_id: int, summary: str, *, closed: bool = False) -> int:
        w = self.world
        if self.kind == "connectwise":
            status = "Closed" if closed else "New"
            return w.connectwise.add_ticket(company_id, summary, status=status, closed=closed)
        if self.kind == "autotask":
            return w.autotask.add_ticket(company_id, summary, closed=closed)
        return w.halopsa.add_ticket(company_id, summary, closed=closed)

    def close_ticket(self, ticket_id: int) -> None:
        """Close a ticket in the PSA, as a technician would."""
        w = self.world
        if self.kind == "autotask":
            w.autotask.set_status(ticket_id, COMPLETE)
        elif self.kind == "halopsa":
            w.halopsa.set_status(ticket_id, CLOSED)
        else:
            with w.connectwise._lock:  # no public setter; the lock keeps the server thread safe
                ticket = w.connectwise._tickets[ticket_id]
                ticket["closedFlag"] = True
                ticket["status"] = {"id": 30, "name": "Closed"}

    def seed_note(self, ticket_id: int, text: str) -> None:
        """A note written by someone else (no faults, no journal)."""
        w = self.world
        if self.kind == "connectwise":
            w.connectwise.add_note(ticket_id, {"text": text, "internalAnalysisFlag": True})
        elif self.kind == "autotask":
            body = {"title": "t", "description": text, "noteType": 1, "publish": 1}
            w.autotask.add_note(ticket_id, body)
        else:
            w.halopsa.add_actions([{"ticket_id": ticket_id, "outcome_id": 2, "note": text}])
