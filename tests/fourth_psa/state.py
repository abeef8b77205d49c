"""The Deskline emulator's world: companies, tickets, notes and the vendor's rate limit.

Thread-safe (``PsaWorld``'s lock guards every record): handlers run in the server thread,
tests read and poke from theirs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from jitadmin.emulators.psa.common import DropMode, PsaWorld, RollingWindow
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

__all__ = ["DesklineError", "DesklineState"]

RATE_LIMIT, RATE_WINDOW_S = 1200, 60.0
_FIRST_NOTE_ID = 7001


class DesklineError(Exception):
    """Rendered as Deskline's error body ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ticket(ticket_id: int, subject: str, label: str, closed: bool, company: int) -> dict[str, Any]:
    return {
        "id": ticket_id,
        "reference": f"DL-{ticket_id}",
        "subject": subject,
        "state": "closed" if closed else "open",
        "status_label": label,
        "company_id": company,
        "created_at": _now(),
    }


class DesklineState(PsaWorld):
    def __init__(self, customers: Sequence[SeedCustomer], creds: SeedCredentials) -> None:
        super().__init__(creds)
        self.rate = RollingWindow(RATE_LIMIT, RATE_WINDOW_S)
        self._notes: dict[int, list[dict[str, Any]]] = {}
        self._next_note_id = _FIRST_NOTE_ID
        for customer in customers:
            cid = customer.psa_company_id
            self._companies[cid] = {"id": cid, "name": customer.name}
            for t in customer.tickets:
                self._tickets[t.id] = _ticket(t.id, t.summary, t.status, t.closed, cid)

    def open_tickets(self, company_id: int) -> list[dict[str, Any]]:
        """The company's open tickets, newest first."""
        if company_id not in {c["id"] for c in self.companies()}:
            raise DesklineError(404, "company_not_found", f"no company {company_id}")
        found = [t for t in self.tickets() if t["company_id"] == company_id]
        return sorted(
            (t for t in found if t["state"] == "open"), key=lambda t: t["id"], reverse=True
        )

    def existing_ticket(self, ticket_id: int) -> dict[str, Any]:
        ticket = self.ticket(ticket_id)
        if ticket is None:
            raise DesklineError(404, "ticket_not_found", f"no ticket {ticket_id}")
        return ticket

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        self.existing_ticket(ticket_id)
        with self._lock:
            return copy.deepcopy(self._notes.get(ticket_id, []))

    def add_note(
        self, ticket_id: int, text: str, *, internal: bool
    ) -> tuple[dict[str, Any], DropMode | None]:
        """Store a note; returns it and how to lose its answer (if the drop switch is armed)."""
        return self._store(ticket_id, text, internal), self.drops.take()

    def _store(self, ticket_id: int, text: str, internal: bool) -> dict[str, Any]:
        if not text.strip():
            raise DesklineError(422, "invalid_note", "text must not be blank")
        self.existing_ticket(ticket_id)
        with self._lock:
            note = {"id": self._next_note_id, "ticket_id": ticket_id, "text": text,
                    "internal": internal, "created_at": _now()}  # fmt: skip
            self._next_note_id += 1
            self._notes.setdefault(ticket_id, []).append(note)
            return copy.deepcopy(note)

    # -- ground truth for tests (emulators.psa.common.TicketGroundTruth) -------------------

    def add_ticket(self, company_id: int, summary: str, *, closed: bool = False) -> int:
        with self._lock:
            ticket_id = self._new_ticket_id()
            label = "Resolved" if closed else "New"
            self._tickets[ticket_id] = _ticket(ticket_id, summary, label, closed, company_id)
            return ticket_id

    def close_ticket(self, ticket_id: int) -> None:
        self.update_ticket(ticket_id, {"state": "closed", "status_label": "Resolved"})

    def seed_note(self, ticket_id: int, text: str) -> None:
        self._store(ticket_id, text, internal=True)  # never uses up the drop switch

    def stored_notes(self, ticket_id: str) -> list[tuple[str, str]]:
        return [(str(n["id"]), n["text"]) for n in self.notes(int(ticket_id))]
