"""The services on the fakes: a real ServiceContext over a real SQLite file, with
``jitadmin.testing``'s fakes in place of every adapter and a ManualClock for time.

No server, no worker thread, no sleep: ``run_due`` does what one worker pass does (each due
grant through ``services.execution.process_grant``, each due note through
``services.notes.deliver_note``), and time moves only with ``advance``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from jitadmin.adapters.clock import ManualClock
from jitadmin.core.grant import Grant
from jitadmin.ports import Customer, IdentityProvider, TicketSystem, User, no_resolver
from jitadmin.services import admin, grants
from jitadmin.services.context import ServiceContext
from jitadmin.services.execution import process_grant
from jitadmin.services.notes import deliver_note
from jitadmin.testing import FakeIdentityProvider, FakeTicketSystem
from jitadmin.wiring import App, build

from support.config import fast_settings

ROOT = User("root", "admin")  # the CLI's unrestricted admin
TECH = User("tech.one@msp.example", "technician")
CUSTOMER = "pedroaviary"
COMPANY = "250"  # the customer's company in the PSA
OTHER_COMPANY = "251"
WORKER = "unit-test-worker"
# What the PSA and identity connections are saved with; the fakes ignore them.
PSA_SETTINGS = {
    "kind": "connectwise", "base_url": "https://psa.msp.example/v4_6_release/apis/3.0",
    "company_id": "msp", "public_key": "public", "private_key": "private-key-1",
    "client_id": "client",
}  # fmt: skip
M365_SETTINGS = {"client_id": "app-id", "client_secret": "app-secret-1"}
AD_SETTINGS = {
    "url": "ldaps://dc.pedroaviary.example", "bind_user": "svc-jit@pedroaviary.example",
    "bind_password": "bind-password-1",
}  # fmt: skip


@dataclass
class ServiceWorld:
    app: App
    clock: ManualClock
    psa: FakeTicketSystem
    identities: dict[str, FakeIdentityProvider] = field(default_factory=dict)

    @property
    def ctx(self) -> ServiceContext:
        return self.app.ctx

    def identity(self, kind: str = "m365") -> FakeIdentityProvider:
        """The customer's directory of ``kind`` (created on first use, kept for the test)."""
        return self.identities.setdefault(kind, FakeIdentityProvider(kind))

    def customer(self) -> Customer:
        with self.ctx.uow() as uow:
            found = uow.customers.get(CUSTOMER)
        assert found is not None
        return found

    def open_ticket(self, *, company: str = COMPANY, closed: bool = False) -> str:
        return self.psa.add_ticket(company, "Install line-of-business app", closed=closed)

    def request(
        self,
        actor: User = TECH,
        *,
        kind: str = "m365",
        ticket_id: str | None = None,
        minutes: int = 60,
        reason: str = "install the accounting app",
    ) -> grants.RequestedGrant:
        return grants.request_grant(
            self.ctx, actor, customer=CUSTOMER, identity_provider=kind,
            ticket_id=ticket_id or self.open_ticket(), duration_minutes=minutes, reason=reason,
        )  # fmt: skip

    def advance(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))

    def run_due(self, max_rounds: int = 50) -> int:
        """Run everything due now, as worker passes would, until nothing is due."""
        done = 0
        for _ in range(max_rounds):
            now = self.clock.now()
            with self.ctx.uow() as uow:
                due_grants = uow.grants.due(now, 100)
                due_notes = uow.outbox.due(now, 100)
            if not due_grants and not due_notes:
                return done
            for grant_id, _customer in due_grants:
                process_grant(self.ctx, grant_id)
            for message_id, _customer in due_notes:
                with self.ctx.uow() as uow:
                    # The claim counts the attempt, as the worker's does.
                    claimed = uow.outbox.claim(message_id, WORKER, now, now + timedelta(minutes=1))
                    uow.commit()
                if claimed:
                    deliver_note(self.ctx, message_id)
            done += len(due_grants) + len(due_notes)
        raise AssertionError(f"work still due after {max_rounds} rounds")

    def grant(self, grant_id: str) -> Grant:
        with self.ctx.uow() as uow:
            found = uow.grants.get(grant_id)
        assert found is not None
        return found

    def audit_kinds(self, grant_id: str | None = None) -> list[str]:
        with self.ctx.uow() as uow:
            return [e.kind for e in uow.audit.entries(grant_id=grant_id)]

    def close(self) -> None:
        self.app.close()


def service_world(tmp_path: Path, template: Path | None = None) -> ServiceWorld:
    """A customer with an M365 and an AD connection and a PSA, all served by fakes.

    ``template``: the database file of a world made earlier, copied instead of migrating and
    seeding again (the same rows; about ten times faster).
    """
    clock = ManualClock()
    if template is not None:
        shutil.copyfile(template, tmp_path / "jitadmin.db")
    app = build(fast_settings(tmp_path), clock=clock, upgrade=template is None)
    world = ServiceWorld(app, clock, FakeTicketSystem())

    def identity_provider(
        customer: Customer, kind: str, settings: dict[str, Any], secrets: dict[str, Any]
    ) -> IdentityProvider:
        return world.identity(kind)

    def ticket_system(kind: str, settings: dict[str, Any], secrets: dict[str, Any]) -> TicketSystem:
        return world.psa

    ctx = app.ctx
    ctx.identity_providers = identity_provider
    ctx.ticket_systems = ticket_system
    ctx.resolve = no_resolver  # no DNS: the saved host names are never contacted
    if template is not None:
        return world
    admin.create_customer(ctx, ROOT, slug=CUSTOMER, name="Pedro Aviary", psa_company_id=COMPANY)
    admin.put_psa(ctx, ROOT, dict(PSA_SETTINGS))
    m365 = {"tenant_id": world.identity("m365").tenant, **M365_SETTINGS}
    admin.put_connection(ctx, ROOT, CUSTOMER, "m365", m365)
    admin.put_connection(ctx, ROOT, CUSTOMER, "ad", dict(AD_SETTINGS))
    return world
