"""In-memory fakes of the world-facing ports, for tests of the services (and of code built on them).

``FakeIdentityProvider`` and ``FakeTicketSystem`` are honest state machines: a directory of
accounts with one admin role, and a PSA with tickets and notes. They answer the way the real
adapters do (idempotent retries, "already so" as success, a marker found only as a note's last
line, errors from the ``core.errors`` taxonomy), and the identity-provider contract suite
(tests/contract/identity) asks them the same questions as the real adapters. Failures are
injected with ``faults.fail_next(TransientError(...), on="revoke")``; ``after_effect=True``
makes the call take effect and then fail, like an answer lost after the server committed.

For time, use ``jitadmin.adapters.clock.ManualClock``. Nothing in production imports this module.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jitadmin.core import naming
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    AlreadyExistsError,
    RejectedError,
    TransientError,
)
from jitadmin.core.passwords import character_classes
from jitadmin.core.texts import carries_marker
from jitadmin.ports import (
    AccessResult,
    AccessSpec,
    ManagedAccount,
    ProgressRecorder,
    RevokeSpec,
    Ticket,
)

__all__ = [
    "FakeAccount",
    "FakeIdentityProvider",
    "FakeTicket",
    "FakeTicketSystem",
    "FaultSwitches",
]


# --- injected failures ----------------------------------------------------------------------


@dataclass
class _Planned:
    error: AdapterError
    operation: str | None  # None: whichever call comes next
    after_effect: bool
    times: int | None  # None: until cleared


@dataclass
class FaultSwitches:
    """Failures planned for the next calls, in order; ``calls`` journals every call made."""

    calls: list[str] = field(default_factory=list)
    _planned: list[_Planned] = field(default_factory=list)

    def fail_next(
        self,
        error: AdapterError,
        *,
        on: str | None = None,
        times: int | None = 1,
        after_effect: bool = False,
    ) -> None:
        """The next ``times`` calls (of operation ``on``, or any; ``times=None``: every one
        until ``clear``) raise ``error``; with ``after_effect`` each call first does its work,
        then fails (the answer was lost after the target committed)."""
        self._planned.append(_Planned(error, on, after_effect, times))

    def clear(self) -> None:
        self._planned.clear()

    def count(self, operation: str) -> int:
        return self.calls.count(operation)

    @contextmanager
    def call(self, operation: str) -> Iterator[None]:
        """Bracket one operation: raise a planned failure before or after its effect."""
        self.calls.append(operation)
        planned = next((p for p in self._planned if p.operation in (None, operation)), None)
        if planned is not None and planned.times is not None:
            planned.times -= 1
            if planned.times <= 0:
                self._planned.remove(planned)
        if planned is not None and not planned.after_effect:
            raise copy.copy(planned.error)
        yield
        if planned is not None:
            raise copy.copy(planned.error)


# --- identity provider ----------------------------------------------------------------------


@dataclass
class FakeAccount:
    object_id: str
    username: str
    requester: str | None  # the owner jitadmin tagged it with; None for a foreign account
    grant_id: str | None  # one account per grant: the grant it was made for
    password: str = field(repr=False)
    enabled: bool = False
    tagged: bool = True  # carries jitadmin's tag
    expires_at: datetime | None = None


class FakeIdentityProvider:
    """A tenant or domain in memory: accounts, one admin role, jitadmin's tag.

    ``keeps_accounts`` (default: ``kind == "ad"``) picks the directory's style: one tech
    account per requester, disabled on revoke and re-used by the next grant (AD), or one
    account per grant, deleted on revoke (M365). Admins jitadmin did not create are listed by
    ``list_managed`` (untagged) only in the per-grant style, as Microsoft 365's adapter does.
    """

    def __init__(
        self,
        kind: str = "m365",
        *,
        tenant_id: str = "00000000-0000-4000-8000-00000000fa6e",
        domain: str = "fake.example",
        keeps_accounts: bool | None = None,
    ) -> None:
        self.kind = kind
        self.tenant = tenant_id
        self.domain = domain
        self.keeps_accounts = kind == "ad" if keeps_accounts is None else keeps_accounts
        self.lists_untagged_admins = not self.keeps_accounts
        self.accounts: dict[str, FakeAccount] = {}
        self.admins: set[str] = set()  # object ids in the admin role
        self.faults = FaultSwitches()
        self._next_id = 1
        self._lagging_removals = 0
        # What the services read back from the grant's ``account`` record.
        self._id_key, self._name_key = (
            ("object_guid", "sam") if self.keeps_accounts else ("user_id", "upn")
        )

    def __repr__(self) -> str:
        return f"FakeIdentityProvider(kind={self.kind!r}, tenant={self.tenant!r})"

    # -- the world's side: what an administrator of the tenant does by hand ---------------

    def add_foreign_account(self, username: str, *, admin: bool = False) -> str:
        """An account jitadmin did not create (no tag); optionally in the admin role."""
        account = self._new(username, requester=None, grant_id=None, tagged=False)
        account.enabled = True
        if admin:
            self.admins.add(account.object_id)
        return account.object_id

    def put_in_admin_role(self, object_id: str) -> None:
        """Someone adds the account to the admin role (and enables it) outside jitadmin."""
        self.accounts[object_id].enabled = True
        self.admins.add(object_id)

    def remove_from_admin_role(self, object_id: str) -> None:
        self.admins.discard(object_id)

    def lag_role_removals(self, times: int = 1) -> None:
        """The next ``times`` role removals are answered as done but not seen on read-back."""
        self._lagging_removals += times

    def account_named(self, username: str) -> FakeAccount | None:
        wanted = username.lower()
        return next((a for a in self.accounts.values() if a.username.lower() == wanted), None)

    def holds_admin(self, object_id: str) -> bool:
        account = self.accounts.get(object_id)
        return account is not None and account.enabled and object_id in self.admins

    def can_sign_in(self, username: str, password: str) -> bool:
        account = self.account_named(username)
        return account is not None and account.enabled and account.password == password

    # -- IdentityProvider ------------------------------------------------------------------

    def planned_username(self, grant_id: str, requester: str) -> str:
        if self.keeps_accounts:
            return naming.ad_sam_account_name(requester, self.domain.split(".")[0])
        return naming.m365_user_principal_name(requester, grant_id, self.domain)

    def grant(self, spec: AccessSpec, record: ProgressRecorder) -> AccessResult:
        with self.faults.call("grant"):
            username = self.planned_username(spec.grant_id, spec.requester)
            if len(spec.password) < 8 or character_classes(spec.password) < 3:
                raise RejectedError(
                    "the password does not meet the password policy (length and complexity)"
                )
            account = self._recorded(spec.account) or self.account_named(username)
            if account is None:
                grant_id = None if self.keeps_accounts else spec.grant_id
                account = self._new(username, _owner(spec.requester), grant_id, tagged=True)
                record("account_created", self._record_of(account))
            elif spec.account.get(self._id_key) != account.object_id:
                self._require_ours(account, spec.requester, spec.grant_id)
                record("account_reused", self._record_of(account))
            account.password = spec.password
            record("password_set", {})
            account.expires_at = spec.expires_at
            record("expiry_set", {})
            account.enabled = True
            record("enabled", {})
            self.admins.add(account.object_id)
            record("role_assigned", {})
            if not self.holds_admin(account.object_id):
                raise TransientError(f"{username} does not show as an admin yet")
            record("verified_granted", {})
            return AccessResult(account.username, self._record_of(account))

    def revoke(self, spec: RevokeSpec, record: ProgressRecorder) -> None:
        with self.faults.call("revoke"):
            account = self._locate_for_revoke(spec, record)
            if account is None:
                return
            if self._lagging_removals:
                self._lagging_removals -= 1  # the answer said done; the role still lists it
            else:
                self.admins.discard(account.object_id)
            record("role_removed", {})
            account.enabled = False
            record("disabled", {})
            account.password = secrets.token_urlsafe(24)  # a value nobody knows
            record("password_reset", {})
            if account.object_id in self.admins:
                raise TransientError(f"revoke of {account.username} not verified: admin role")
            if not self.keeps_accounts:
                del self.accounts[account.object_id]
                record("user_deleted", {"user_deleted": True})
            record("verified_revoked", {})

    def extend(self, spec: AccessSpec) -> None:
        with self.faults.call("extend"):
            username = self.planned_username(spec.grant_id, spec.requester)
            account = self._recorded(spec.account) or self.account_named(username)
            if account is None:
                raise TransientError(f"{username} is not visible; cannot move its expiry")
            self._require_ours(account, spec.requester, spec.grant_id)
            account.expires_at = spec.expires_at

    def check(self) -> list[str]:
        with self.faults.call("check"):
            managed = [a for a in self.accounts.values() if a.tagged]
            return [
                f"directory {self.domain} (tenant {self.tenant})",
                f"{len(managed)} account(s) managed by jitadmin, "
                f"{sum(a.enabled for a in managed)} enabled",
            ]

    def tenant_id(self) -> str:
        with self.faults.call("tenant_id"):
            return self.tenant

    def list_managed(self) -> list[ManagedAccount]:
        with self.faults.call("list_managed"):
            listed = [self._managed(a) for a in self.accounts.values() if a.tagged]
            if self.lists_untagged_admins:
                listed += [
                    self._managed(self.accounts[oid])
                    for oid in sorted(self.admins)
                    if oid in self.accounts and not self.accounts[oid].tagged
                ]
            return listed

    # -- helpers ---------------------------------------------------------------------------

    def _new(
        self, username: str, requester: str | None, grant_id: str | None, *, tagged: bool
    ) -> FakeAccount:
        if self.account_named(username) is not None:
            raise AlreadyExistsError(f"{username} exists already")
        object_id = f"00000000-0000-4000-a000-{self._next_id:012d}"
        self._next_id += 1
        account = FakeAccount(object_id, username, requester, grant_id, "", tagged=tagged)
        self.accounts[object_id] = account
        return account

    def _recorded(self, account: Mapping[str, Any]) -> FakeAccount | None:
        """The object a grant recorded, by id: ours whatever its attributes say now."""
        object_id = account.get(self._id_key)
        return self.accounts.get(object_id) if isinstance(object_id, str) else None

    def _ours(self, account: FakeAccount, requester: str, grant_id: str) -> bool:
        if not account.tagged:
            return False
        if self.keeps_accounts:
            return account.requester == _owner(requester)
        return account.grant_id == grant_id

    def _require_ours(self, account: FakeAccount, requester: str, grant_id: str) -> None:
        if not self._ours(account, requester, grant_id):
            raise AlreadyExistsError(
                f"an account named {account.username} exists already and is not managed by "
                "jitadmin for this grant; it is left untouched"
            )

    def _locate_for_revoke(self, spec: RevokeSpec, record: ProgressRecorder) -> FakeAccount | None:
        if isinstance(spec.account.get(self._id_key), str):
            account = self._recorded(spec.account)
            if account is None:
                record("verified_revoked", {"account_gone": True})  # deleted by someone
            return account
        username = spec.username or self.planned_username(spec.grant_id, spec.requester)
        account = self.account_named(username)
        if account is None:
            record("verified_revoked", {})  # never created: nothing to take away
            return None
        if not self._ours(account, spec.requester, spec.grant_id):
            record("verified_revoked", {"foreign_account_left_alone": True})
            return None
        record("account_found", self._record_of(account))
        return account

    def _record_of(self, account: FakeAccount) -> dict[str, Any]:
        return {self._id_key: account.object_id, self._name_key: account.username}

    def _managed(self, account: FakeAccount) -> ManagedAccount:
        return ManagedAccount(
            username=account.username,
            object_id=account.object_id,
            grant_id=account.grant_id if account.tagged else None,
            requester=account.requester if account.tagged and self.keeps_accounts else None,
            enabled=account.enabled,
            holds_admin=self.holds_admin(account.object_id),
            account=self._record_of(account),
            tagged=account.tagged,
        )


def _owner(requester: str) -> str:
    return requester.strip().lower()


# --- ticket system --------------------------------------------------------------------------


@dataclass
class FakeTicket:
    id: str
    summary: str
    company_id: str
    is_closed: bool = False
    notes: list[tuple[str, str]] = field(default_factory=list)  # (note id, text), oldest first

    def as_ticket(self) -> Ticket:
        status = "Closed" if self.is_closed else "New"
        return Ticket(self.id, self.id, self.summary, status, self.is_closed, self.company_id)


class FakeTicketSystem:
    """A PSA in memory: tickets of companies, open or closed, with internal notes."""

    def __init__(self, kind: str = "fake-psa") -> None:
        self.kind = kind
        self.tickets: dict[str, FakeTicket] = {}
        self.faults = FaultSwitches()
        self._next_ticket = 48_000
        self._next_note = 1

    def __repr__(self) -> str:
        return f"FakeTicketSystem(kind={self.kind!r}, tickets={len(self.tickets)})"

    # -- the world's side: what technicians do in the PSA ----------------------------------

    def add_ticket(self, company_id: str, summary: str, *, closed: bool = False) -> str:
        # Above every id there is, so a ticket put into ``tickets`` directly is never replaced
        # and a newer ticket always has a higher id (the listing is newest first).
        taken = (int(i) for i in self.tickets if i.isdigit())
        self._next_ticket = max(self._next_ticket, *taken, 0) + 1
        ticket = FakeTicket(str(self._next_ticket), summary, str(company_id), closed)
        self.tickets[ticket.id] = ticket
        return ticket.id

    def close_ticket(self, ticket_id: str) -> None:
        self.tickets[ticket_id].is_closed = True

    def notes(self, ticket_id: str) -> list[str]:
        """The texts of the ticket's notes, oldest first."""
        return [text for _, text in self.tickets[ticket_id].notes]

    def seed_note(self, ticket_id: str, text: str) -> str:
        """A note written by someone else (no faults, no journal)."""
        return self._store(self.tickets[ticket_id], text)

    # -- TicketSystem ----------------------------------------------------------------------

    def list_open_tickets(self, company_id: str) -> list[Ticket]:
        with self.faults.call("list_open_tickets"):
            found = [
                t for t in self.tickets.values() if t.company_id == company_id and not t.is_closed
            ]
            return [t.as_ticket() for t in sorted(found, key=lambda t: int(t.id), reverse=True)]

    def get_ticket(self, ticket_id: str) -> Ticket:
        with self.faults.call("get_ticket"):
            return self._ticket(ticket_id).as_ticket()

    def find_note(self, ticket_id: str, marker: str) -> str | None:
        if not marker:
            raise ValueError("marker must not be empty")
        with self.faults.call("find_note"):
            ticket = self._ticket(ticket_id)
            return next((i for i, text in ticket.notes if carries_marker(text, marker)), None)

    def add_note(self, ticket_id: str, text: str) -> str:
        with self.faults.call("add_note"):
            ticket = self._ticket(ticket_id)
            if not text.strip():
                raise RejectedError("the note was refused: it has no text")
            return self._store(ticket, text)

    def check(self) -> list[str]:
        with self.faults.call("check"):
            open_count = sum(not t.is_closed for t in self.tickets.values())
            return [f"{open_count} open tickets visible"]

    # -- helpers ---------------------------------------------------------------------------

    def _ticket(self, ticket_id: str) -> FakeTicket:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise AdapterNotFoundError(f"no ticket {ticket_id!r}")
        return ticket

    def _store(self, ticket: FakeTicket, text: str) -> str:
        note_id = str(self._next_note)
        self._next_note += 1
        ticket.notes.append((note_id, text))
        return note_id
