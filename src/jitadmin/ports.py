"""The ports: what services need from the outside world, as Protocols and plain dataclasses.

Adapters (``jitadmin.adapters``) and the database (``jitadmin.db``) implement these; services
depend only on this module and on ``jitadmin.core``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# --- time and secrets -------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC now."""
        ...


class SecretBox(Protocol):
    """Authenticated encryption for secrets at rest; ``context`` binds a ciphertext to its row."""

    def seal(self, plaintext: str, context: str) -> str: ...

    def open(self, sealed: str, context: str) -> str: ...


# --- identity providers -----------------------------------------------------------------

# Called by an adapter after each completed step, with data to merge into the grant's
# ``account`` record (object ids...). The recorder commits at once, so progress survives a crash.
ProgressRecorder = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class AccessSpec:
    grant_id: str
    requester: str
    password: str
    expires_at: datetime
    # What earlier attempts recorded (e.g. ``{"user_id": ...}``); empty on the first attempt.
    account: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AccessResult:
    username: str
    account: dict[str, Any]


@dataclass(frozen=True)
class RevokeSpec:
    grant_id: str
    requester: str
    username: str | None
    account: Mapping[str, Any] = field(default_factory=dict)


class IdentityProvider(Protocol):
    """Grants and takes away admin rights in one customer tenant or domain.

    Every method is idempotent: "already so" counts as success, so a retry after a crash at
    any point converges. ``revoke`` returns only after reading the target back and seeing the
    access gone; otherwise it raises.
    """

    kind: str

    def planned_username(self, grant_id: str, requester: str) -> str: ...

    def grant(self, spec: AccessSpec, record: ProgressRecorder) -> AccessResult: ...

    def revoke(self, spec: RevokeSpec, record: ProgressRecorder) -> None: ...

    def check(self) -> list[str]:
        """Test the connection; returns human-readable findings, raises on failure."""
        ...


# --- ticket systems ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    id: str
    number: str
    summary: str
    status: str
    is_closed: bool
    company_id: str


class TicketSystem(Protocol):
    kind: str

    def list_open_tickets(self, company_id: str) -> list[Ticket]: ...

    def get_ticket(self, ticket_id: str) -> Ticket:
        """Raises ``AdapterNotFoundError`` for an unknown ticket."""
        ...

    def find_note(self, ticket_id: str, marker: str) -> str | None:
        """The id of a note on the ticket whose text contains ``marker``, if any."""
        ...

    def add_note(self, ticket_id: str, text: str) -> str:
        """Post an internal note; returns the new note's id. Not idempotent by itself."""
        ...
