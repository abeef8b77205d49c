"""Read models and small admin use cases for the web console.

Everything here goes through the same role and visibility rules as the API
(``require_role``, ``visible_grant``); nothing returned carries a secret.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jitadmin.core.errors import AdapterError, AdapterNotFoundError, NotFoundError
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant
from jitadmin.ports import ApiToken, Customer, OutboxMessage, Ticket, User
from jitadmin.services.admin import hash_token
from jitadmin.services.context import ADMIN, ServiceContext, require_role
from jitadmin.services.grants import UpstreamUnavailableError, show_grant, visible_grant


@dataclass(frozen=True)
class CustomerSetup:
    customer: Customer
    connections: dict[str, dict[str, Any]]  # kind -> settings that may be shown


@dataclass(frozen=True)
class GrantStatus:
    grant: Grant
    failure: str | None  # why provisioning failed, when it did


@dataclass(frozen=True)
class GrantDetail:
    grant: Grant
    events: list[AuditEvent]
    notes: list[OutboxMessage]
    failure: str | None


def _failure(events: list[AuditEvent]) -> str | None:
    failed = [e for e in events if e.kind == "grant.failed"]
    return str(failed[-1].data.get("error") or "provisioning failed") if failed else None


def grant_status(ctx: ServiceContext, actor: User, grant_id: str) -> GrantStatus:
    grant, events = show_grant(ctx, actor, grant_id)
    return GrantStatus(grant, _failure(events))


def grant_detail(ctx: ServiceContext, actor: User, grant_id: str) -> GrantDetail:
    grant, events = show_grant(ctx, actor, grant_id)
    with ctx.uow() as uow:
        notes = uow.outbox.for_grant(grant.id)
    return GrantDetail(grant, events, notes, _failure(events))


def grant_ticket(ctx: ServiceContext, actor: User, grant_id: str) -> Ticket:
    """The grant's ticket as the PSA has it now (asked with no transaction open)."""
    with ctx.uow() as uow:
        grant = visible_grant(uow, actor, grant_id)
        system = ctx.tickets(uow)
    try:
        return system.get_ticket(grant.ticket_id)
    except AdapterNotFoundError as error:
        raise NotFoundError("ticket", grant.ticket_id) from error
    except AdapterError as error:
        raise UpstreamUnavailableError(f"the PSA did not answer: {error}") from error


def customer_setups(ctx: ServiceContext, actor: User) -> list[CustomerSetup]:
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        setups = []
        for customer in uow.customers.all():
            shown: dict[str, dict[str, Any]] = {}
            for kind in sorted(uow.connections.kinds(customer.slug)):
                record = uow.connections.get(customer.slug, kind)
                if record is not None:
                    shown[kind] = dict(record.settings)
            setups.append(CustomerSetup(customer, shown))
        return setups


def psa_setup(ctx: ServiceContext, actor: User) -> tuple[str, dict[str, Any]] | None:
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        record = uow.connections.get_psa()
    return None if record is None else (record.kind, dict(record.settings))


def list_tokens(ctx: ServiceContext, actor: User) -> list[ApiToken]:
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        return uow.api_tokens.all()


def issue_token(ctx: ServiceContext, actor: User, username: str) -> str:
    """A new API token for ``username``; returned this once, stored as a hash."""
    require_role(actor, ADMIN)
    token = "jit_" + secrets.token_urlsafe(32)
    with ctx.uow() as uow:
        if uow.users.get(username) is None:
            raise NotFoundError("user", username)
        now = ctx.clock.now()
        uow.api_tokens.add(
            username, hash_token(token), now, now + timedelta(days=ctx.security.api_token_days)
        )
        uow.audit.append(
            AuditEvent("token.issued", actor.username, ctx.clock.now(), data={"user": username})
        )
        uow.commit()
    return token


def revoke_token(ctx: ServiceContext, actor: User, token_id: int) -> ApiToken:
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        removed = uow.api_tokens.delete(token_id)
        if removed is None:
            raise NotFoundError("token", str(token_id))
        uow.audit.append(
            AuditEvent(
                "token.revoked",
                actor.username,
                ctx.clock.now(),
                data={"user": removed.username, "hint": removed.hint},
            )
        )
        uow.commit()
    return removed
