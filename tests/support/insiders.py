"""Helpers for the insider-attack tests: extra admins, web sessions, and "nothing was written".

``stored_state`` reads everything an attack on users, tokens or settings could change (the whole
audit trail included), so a test compares it before and after the attack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from jitadmin.ports import AuditQuery, User
from jitadmin.services import admin, sessions

from support.system import System

A, B = "pedroaviary", "northwind"
ROOT = User("root", "admin")  # the CLI's unrestricted admin
POLICY = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


@dataclass(frozen=True)
class Insider:
    username: str
    password: str
    token: str

    def api(self, system: System) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=f"{system.url}/api/v1", headers=headers, timeout=30)


def add_admin(system: System, username: str, customers: list[str] | None = None) -> Insider:
    ctx = system.app.ctx
    made = admin.add_user(ctx, ROOT, username=username, role="admin", customers=customers)
    return Insider(username, made.password, made.token)


@dataclass(frozen=True)
class WebSession:
    session_id: str  # the cookie: never stored, never audited
    csrf: str

    def client(self, system: System) -> httpx.Client:
        client = httpx.Client(base_url=system.url, timeout=30, follow_redirects=False)
        client.cookies.set("jitadmin_session", self.session_id)
        return client

    def form(self, **fields: str) -> dict[str, str]:
        return {"csrf_token": self.csrf, **fields}


def sign_in(system: System, who: Insider) -> WebSession:
    signed = sessions.sign_in(system.app.ctx, who.username, who.password, POLICY)
    return WebSession(signed.session_id, signed.csrf_token)


def stored_state(system: System) -> dict[str, Any]:
    with system.app.ctx.uow() as uow:
        customers = uow.customers.all()
        return {
            "audit": [(e.seq, e.hash) for e in uow.audit.search(AuditQuery(), 1_000_000)],
            "customers": customers,
            "users": uow.users.all(),
            "tokens": [(t.id, t.username, t.hint) for t in uow.api_tokens.all()],
            "psa": uow.connections.get_psa(),
            "connections": {
                (c.slug, kind): uow.connections.get(c.slug, kind)
                for c in customers
                for kind in sorted(uow.connections.kinds(c.slug))
            },
        }


def written(system: System) -> dict[str, Any]:
    """Everything a write could change: ``stored_state`` plus every grant and the outbox."""
    with system.app.ctx.uow() as uow:
        grants = [(g.id, g.state, g.expires_at, g.reason) for g in uow.grants.find()]
        outbox = [(m.marker, m.state) for g in grants for m in uow.outbox.for_grant(g[0])]
    return {**stored_state(system), "grants": grants, "outbox": outbox}


def tenant_of(system: System, slug: str) -> str:
    customer = next(c for c in system.world.customers if c.slug == slug)
    return str(system.world.graph_settings(customer)["tenant_id"])
