"""The Autotask emulator's world: companies, tickets, ticket notes, picklists, the threshold.

Thread-safe: handlers run in the server thread, tests read and poke from theirs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jitadmin.emulators.psa.common import DropMode, PsaWorld, RollingWindow
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

__all__ = ["COMPLETE", "ATError", "AutotaskState"]

COMPLETE = 5  # the fixed system status "Complete"; other statuses are per instance
STATUSES = {1: "New", 5: "Complete", 7: "Waiting Customer", 8: "In Progress"}
_SEED_STATUS = {"New": 1, "In Progress": 8, "Waiting on Client": 7, "Closed": COMPLETE}
NOTE_TYPES = {1: "Task Summary", 2: "Task Detail", 3: "Task Notes"}
PUBLISH = {1: "All Autotask Users", 2: "Internal Users"}
CATEGORIES = {3: "Standard", 4: "Change Request"}
TITLED_CATEGORIES = {4}  # "Require titles on ticket notes" is on for these
HOURLY_THRESHOLD = 10_000
API_RESOURCE_ID = 29682885
_FIRST_NOTE_ID = 3001
_TITLE_MAX, _DESCRIPTION_MAX = 250, 32_000


class ATError(Exception):
    """Rendered as Autotask's ``{"errors": [...]}`` envelope (usually with HTTP 500)."""

    def __init__(self, status: int, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.status, self.messages = status, list(messages)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _company(customer: SeedCustomer) -> dict[str, Any]:
    return {
        "id": customer.psa_company_id,
        "companyName": customer.name,
        "companyNumber": customer.psa_identifier,
        "companyType": 1,
        "isActive": True,
        "userDefinedFields": [],
    }


def _ticket(
    ticket_id: int, number: str, title: str, status: int, company_id: int
) -> dict[str, Any]:
    now = _now()
    return {
        "id": ticket_id,
        "ticketNumber": number,
        "title": title,
        "description": "",
        "status": status,
        "companyID": company_id,
        "queueID": 29683481,
        "priority": 2,
        "ticketCategory": 3,
        "createDate": now,
        "lastActivityDate": now,
        "completedDate": now if status == COMPLETE else None,
        "userDefinedFields": [],
    }


# Field names per entity (what a filter or IncludeFields may name).
TICKET_FIELDS = tuple(_ticket(0, "", "", 1, 0))
COMPANY_FIELDS = ("id", "companyName", "companyNumber", "companyType", "isActive")
NOTE_FIELDS = (
    "id", "ticketID", "title", "description", "noteType", "publish", "createDateTime",
    "creatorResourceID", "lastActivityDate", "impersonatorCreatorResourceID",
)  # fmt: skip


def _picklist(values: Mapping[int, str], system: bool = True) -> list[dict[str, Any]]:
    return [
        {"value": str(v), "label": label, "isActive": True, "isSystem": system,
         "isDefaultValue": i == 0, "sortOrder": i + 1}
        for i, (v, label) in enumerate(values.items())
    ]  # fmt: skip


def entity_fields(entity: str) -> list[dict[str, Any]]:
    """``{entity}/entityInformation/fields``: the fields, with picklists where they have one."""
    picklists: dict[str, dict[str, list[dict[str, Any]]]] = {
        "Tickets": {"status": _picklist(STATUSES), "ticketCategory": _picklist(CATEGORIES, False)},
        "TicketNotes": {"noteType": _picklist(NOTE_TYPES, False), "publish": _picklist(PUBLISH)},
        "Companies": {},
    }
    names = {"Tickets": TICKET_FIELDS, "TicketNotes": NOTE_FIELDS, "Companies": COMPANY_FIELDS}
    out = []
    for name in names[entity]:
        values = picklists[entity].get(name)
        out.append({
            "name": name, "dataType": "integer" if name.endswith(("ID", "id")) else "string",
            "isPickList": values is not None, "picklistValues": values,
            "isRequired": name in {"ticketID", "description", "noteType", "publish"},
            "isReadOnly": name == "id",
        })  # fmt: skip
    return out


class AutotaskState(PsaWorld):
    def __init__(self, customers: Sequence[SeedCustomer], creds: SeedCredentials) -> None:
        super().__init__(creds)
        self.threshold = RollingWindow(HOURLY_THRESHOLD, 3600.0)
        self.threshold_status = 429
        self._notes: dict[int, dict[str, Any]] = {}
        self._next_note_id = _FIRST_NOTE_ID
        self._numbers = 0
        for customer in customers:
            self._companies[customer.psa_company_id] = _company(customer)
            for t in customer.tickets:
                status = _SEED_STATUS.get(t.status, 1)
                company_id = customer.psa_company_id
                number = self._next_number()
                self._tickets[t.id] = _ticket(t.id, number, t.summary, status, company_id)
        # The first seed ticket sits in a category whose notes need a title (Autotask's
        # "Require titles on ticket notes" setting), so
        # every flow that notes it proves the client sends one.
        first = next((c.tickets[0].id for c in customers if c.tickets), None)
        if first is not None:
            self._tickets[first]["ticketCategory"] = 4

    def _next_number(self) -> str:
        self._numbers += 1
        return f"T20261120.{self._numbers:04d}"

    # --- reads (copies; companies and tickets come from PsaWorld) --------------------------

    def all_notes(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._notes.values()))

    def notes(self, ticket_id: int | str) -> list[dict[str, Any]]:
        with self._lock:
            wanted = int(ticket_id)
            return [copy.deepcopy(n) for n in self._notes.values() if n["ticketID"] == wanted]

    # --- writes -------------------------------------------------------------------------

    def add_ticket(self, company_id: int, title: str, *, closed: bool = False) -> int:
        """Add a ticket (e.g. to force paging); returns its id."""
        with self._lock:
            if company_id not in self._companies:
                raise KeyError(company_id)
            ticket_id = self._new_ticket_id()
            status = COMPLETE if closed else 1
            number = self._next_number()
            self._tickets[ticket_id] = _ticket(ticket_id, number, title, status, company_id)
            return ticket_id

    def statuses(self) -> set[int]:
        """The ticket status picklist's values."""
        return set(_SEED_STATUS.values())

    def set_status(self, ticket_id: int, status: int) -> None:
        with self._lock:
            ticket = self._tickets[ticket_id]
            ticket["status"] = status
            ticket["completedDate"] = _now() if status == COMPLETE else None

    # -- ground truth for tests (emulators.psa.common.TicketGroundTruth) -------------------

    def close_ticket(self, ticket_id: int) -> None:
        self.set_status(ticket_id, COMPLETE)

    def seed_note(self, ticket_id: int, text: str) -> None:
        self.add_note(ticket_id, {"title": "t", "description": text, "noteType": 1, "publish": 1})

    def stored_notes(self, ticket_id: str) -> list[tuple[str, str]]:
        notes = sorted(self.notes(ticket_id), key=lambda n: int(n["id"]))
        return [(str(n["id"]), n["description"]) for n in notes]

    def add_note(self, ticket_id: int, body: Any) -> tuple[dict[str, Any], DropMode | None]:
        """Validate and store a note; returns it and how to lose the answer (if armed)."""
        with self._lock:
            ticket = self._tickets.get(ticket_id)
            if ticket is None:
                raise ATError(500, f"Parent Ticket with id {ticket_id} does not exist.")
            note = _validated_note(ticket, body)
            note |= {"id": self._next_note_id, "createDateTime": _now()}
            note["lastActivityDate"] = note["createDateTime"]
            self._next_note_id += 1
            self._notes[note["id"]] = note
            ticket["lastActivityDate"] = note["createDateTime"]
            mode = self.drops.take()
            return copy.deepcopy(note), mode


def _validated_note(ticket: Mapping[str, Any], body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ATError(500, "The request body must be a TicketNote object.")
    errors: list[str] = []
    description = body.get("description")
    if not isinstance(description, str) or not description.strip():
        errors.append("Missing Required Field: description.")
    elif len(description) > _DESCRIPTION_MAX:
        errors.append(f"description exceeds the maximum length of {_DESCRIPTION_MAX}.")
    title = body.get("title")
    if title is not None and (not isinstance(title, str) or len(title) > _TITLE_MAX):
        errors.append(f"title must be text of at most {_TITLE_MAX} characters.")
    if ticket["ticketCategory"] in TITLED_CATEGORIES and not (title or "").strip():
        errors.append("Title is required for notes on tickets in this category.")
    if body.get("ticketID") not in (None, ticket["id"]):
        errors.append("ticketID does not match the parent ticket.")
    for name, values in (("noteType", NOTE_TYPES), ("publish", PUBLISH)):
        value = body.get(name)
        if value is None:
            errors.append(f"Missing Required Field: {name}.")
        elif isinstance(value, bool) or value not in values:
            errors.append(f"Value {value!r} is not a valid {name}.")
    if errors:
        raise ATError(500, *errors)
    return {
        "ticketID": ticket["id"],
        "title": title or "",
        "description": description,
        "noteType": body["noteType"],
        "publish": body["publish"],
        "creatorResourceID": API_RESOURCE_ID,
        "impersonatorCreatorResourceID": None,
    }
