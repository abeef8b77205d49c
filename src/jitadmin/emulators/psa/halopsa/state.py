"""The HaloPSA emulator's world: clients, tickets, actions, outcomes, tokens, the rate limit.

Thread-safe: handlers run in the server thread, tests read and poke from theirs.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from jitadmin.emulators.psa.common import DropMode, PsaWorld, RollingWindow
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

__all__ = ["CLOSED", "HaloError", "HaloState"]

STATUSES = {1: "New", 2: "In Progress", 3: "Waiting on Client", 9: "Closed"}
CLOSED = 9
_SEED_STATUS = {"New": 1, "In Progress": 2, "Waiting on Client": 3, "Closed": CLOSED}
# Outcome 7 is the built-in private note; Halo refuses an action without an outcome.
OUTCOMES = {1: "Email User", 2: "Update", 7: "Private Note"}
RATE_LIMIT, RATE_WINDOW_S = 300, 300.0
TOKEN_TTL_S = 3600
_FIRST_ACTION_ID = 15
_VALIDATION = "Halo.Exceptions.ValidationException"


class HaloError(Exception):
    """Rendered as Halo's ``{"ClassName", "Message"}`` error body (its usual 400 shape)."""

    def __init__(self, status: int, message: str, class_name: str = _VALIDATION) -> None:
        super().__init__(message)
        self.status, self.message, self.class_name = status, message, class_name


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ticket(ticket_id: int, summary: str, status: int, customer: SeedCustomer) -> dict[str, Any]:
    closed = status == CLOSED
    now = _now()
    return {
        "id": ticket_id,
        "summary": summary,
        "details": "",
        "status_id": status,
        "tickettype_id": 1,
        "priority_id": 3,
        "client_id": customer.psa_company_id,
        "client_name": customer.name,
        "site_id": customer.psa_company_id * 10,
        "site_name": "Main",
        "user_id": 1,
        "agent_id": 0,
        "team": "Service Desk",
        "dateoccurred": now,
        "dateclosed": now if closed else None,
        "hasbeenclosed": closed,
    }


def _client(customer: SeedCustomer) -> dict[str, Any]:
    return {
        "id": customer.psa_company_id,
        "name": customer.name,
        "inactive": False,
        "toplevel_id": 1,
        "toplevel_name": "Top Level",
    }


class HaloState(PsaWorld):
    def __init__(self, customers: Sequence[SeedCustomer], creds: SeedCredentials) -> None:
        super().__init__(creds)
        self.rate = RollingWindow(RATE_LIMIT, RATE_WINDOW_S)
        self.token_ttl_s = TOKEN_TTL_S
        self._customers = {c.psa_company_id: c for c in customers}
        self._companies = {c.psa_company_id: _client(c) for c in customers}
        self._actions: dict[int, dict[str, Any]] = {}
        self._tokens: dict[str, float] = {}
        self._next_action_id = _FIRST_ACTION_ID
        for customer in customers:
            for t in customer.tickets:
                status = _SEED_STATUS.get(t.status, 1)
                self._tickets[t.id] = _ticket(t.id, t.summary, status, customer)

    # --- tokens -------------------------------------------------------------------------

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl_s
        return token

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
            return expiry is not None and expiry > time.monotonic()

    def expire_tokens(self) -> int:
        """Every issued token stops working (401 until the client gets a new one)."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    # --- reads (copies; tickets come from PsaWorld) ----------------------------------------

    def clients(self) -> list[dict[str, Any]]:
        """Halo calls its companies clients."""
        return self.companies()

    def actions(self, ticket_id: int | str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            found = [
                a
                for a in self._actions.values()
                if ticket_id is None or a["ticket_id"] == int(ticket_id)
            ]
            return copy.deepcopy(sorted(found, key=lambda a: int(a["id"])))

    # --- writes -------------------------------------------------------------------------

    def add_ticket(self, client_id: int, summary: str, *, closed: bool = False) -> int:
        """Add a ticket (e.g. to force paging); returns its id."""
        with self._lock:
            ticket_id = self._new_ticket_id()
            status = CLOSED if closed else 1
            self._tickets[ticket_id] = _ticket(
                ticket_id, summary, status, self._customers[client_id]
            )
            return ticket_id

    def set_status(self, ticket_id: int, status: int) -> None:
        """Move a ticket; closing sets ``hasbeenclosed``, which stays set when it reopens."""
        with self._lock:
            ticket = self._tickets[ticket_id]
            ticket["status_id"] = status
            if status == CLOSED:
                ticket["hasbeenclosed"] = True
                ticket["dateclosed"] = _now()
            else:
                ticket["dateclosed"] = None

    # -- ground truth for tests (emulators.psa.common.TicketGroundTruth) -------------------

    def close_ticket(self, ticket_id: int) -> None:
        self.set_status(ticket_id, CLOSED)

    def seed_note(self, ticket_id: int, text: str) -> None:
        self.add_actions([{"ticket_id": ticket_id, "outcome_id": 2, "note": text}])

    def stored_notes(self, ticket_id: str) -> list[tuple[str, str]]:
        return [(str(a["id"]), a["note"]) for a in self.actions(ticket_id)]

    def add_actions(self, body: Any) -> tuple[list[dict[str, Any]], DropMode | None]:
        """Validate and store every action of the array (all or none)."""
        if not isinstance(body, list) or not body:
            raise HaloError(400, "The request body must be a JSON array of actions.")
        with self._lock:
            prepared = [self._validated(item) for item in body]
            created = []
            for action in prepared:
                action |= {"id": self._next_action_id, "datetime": _now()}
                self._next_action_id += 1
                self._actions[action["id"]] = action
                created.append(copy.deepcopy(action))
            return created, self.drops.take()

    def _validated(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise HaloError(400, "Each action must be an object.")
        ticket_id = item.get("ticket_id")
        if isinstance(ticket_id, bool) or not isinstance(ticket_id, int) or ticket_id <= 0:
            raise HaloError(400, "A Ticket must be selected for this Action")
        if ticket_id not in self._tickets:
            raise HaloError(400, f"Ticket {ticket_id} does not exist")
        outcome_id = _outcome_id(item)
        note = item.get("note")
        note_html = item.get("note_html")
        if not isinstance(note, str | None) or not isinstance(note_html, str | None):
            raise HaloError(400, "note and note_html must be text")
        hidden = item.get("hiddenfromuser", False)
        return {
            "ticket_id": ticket_id,
            "outcome_id": outcome_id,
            "outcome": OUTCOMES[outcome_id],
            "note": note if note is not None else _strip_html(note_html or ""),
            "note_html": note_html,
            "hiddenfromuser": bool(hidden),
            "sendemail": bool(item.get("sendemail", False)),
            "who": "JIT API",
            "who_type": 1,
            "actionby_application_id": "JIT App",
        }


def _outcome_id(item: dict[str, Any]) -> int:
    raw_id, name = item.get("outcome_id"), item.get("outcome")
    if raw_id is None and not name:
        raise HaloError(400, "An Outcome must be entered for this Action")
    if raw_id is not None:
        if isinstance(raw_id, bool) or raw_id not in OUTCOMES:
            raise HaloError(400, f"Outcome {raw_id!r} is not valid for this Action")
        return int(raw_id)
    for outcome_id, label in OUTCOMES.items():
        if str(name).lower() == label.lower():
            return outcome_id
    raise HaloError(400, f"Outcome {name!r} is not valid for this Action")


def _strip_html(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)
