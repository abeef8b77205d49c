"""Read models and small admin use cases for the web console.

Everything here goes through the same role and visibility rules as the API
(``require_role``, ``visible_grant``); nothing returned carries a secret.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jitadmin.core import fields
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    ForbiddenError,
    NotFoundError,
    UpstreamUnavailableError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant
from jitadmin.ports import ApiToken, Customer, OutboxMessage, Ticket, UnitOfWork, User
from jitadmin.services.admin import hash_token
from jitadmin.services.context import (
    ADMIN,
    ServiceContext,
    require_role,
    require_unrestricted_admin,
)
from jitadmin.services.grants import show_grant, visible_grant


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
    ctx.psa_lookups.spend(actor, ctx.clock.now())
    try:
        return system.get_ticket(grant.ticket_id)
    except AdapterNotFoundError as error:
        raise NotFoundError("ticket", grant.ticket_id) from error
    except AdapterError as error:
        raise UpstreamUnavailableError(f"the PSA did not answer: {error}") from error


def customer_setups(ctx: ServiceContext, actor: User) -> list[CustomerSetup]:
    """The customers this admin manages, with the settings of their connections."""
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        setups = []
        for customer in uow.customers.all():
            if not actor.may_use(customer.slug):
                continue
            shown: dict[str, dict[str, Any]] = {}
            for kind in sorted(uow.connections.kinds(customer.slug)):
                record = uow.connections.get(customer.slug, kind)
                if record is not None:
                    shown[kind] = dict(record.settings)
            setups.append(CustomerSetup(customer, shown))
        return setups


def psa_setup(ctx: ServiceContext, actor: User) -> tuple[str, dict[str, Any]] | None:
    require_unrestricted_admin(actor, "the PSA connection (shared by every customer)")
    with ctx.uow() as uow:
        record = uow.connections.get_psa()
    return None if record is None else (record.kind, dict(record.settings))


def _manages(uow: UnitOfWork, actor: User, username: str) -> bool:
    """Whose tokens ``actor`` sees and revokes: its own; an admin's, those of the users whose
    customers all lie inside its scope (an unrestricted admin: everyone's)."""
    if username == actor.username:
        return True
    owner = uow.users.get(username)
    return actor.role == ADMIN and owner is not None and actor.covers(owner.customers)


def list_tokens(ctx: ServiceContext, actor: User) -> list[ApiToken]:
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        return [t for t in uow.api_tokens.all() if _manages(uow, actor, t.username)]


def issue_token(ctx: ServiceContext, actor: User, username: str | None = None) -> str:
    """A new API token for the caller (``username`` may only name the caller); returned this
    once, stored as a hash. Nobody mints a credential for someone else: another user's first
    token comes with the account (``add_user``)."""
    fields.check({"username": username})
    if username is not None and username != actor.username:
        raise ForbiddenError(
            "username: API tokens are issued only to the caller themselves "
            f"(you are {actor.username!r}); {username!r} gets a token of their own at creation"
        )
    token = "jit_" + secrets.token_urlsafe(32)
    with ctx.uow() as uow:
        if uow.users.get(actor.username) is None:
            raise NotFoundError("user", actor.username)
        now = ctx.clock.now()
        expires = now + timedelta(days=ctx.security.api_token_days)
        token_id = uow.api_tokens.add(actor.username, hash_token(ctx, token), now, expires)
        data = {"user": actor.username, "token_id": token_id}
        uow.audit.append(AuditEvent("token.issued", actor.username, now, data=data))
        uow.commit()
    return token


def revoke_token(ctx: ServiceContext, actor: User, token_id: int) -> ApiToken:
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        removed = uow.api_tokens.delete(token_id)
        if removed is None or not _manages(uow, actor, removed.username):
            # Rolled back: a token outside the admin's scope is left alone, and not confirmed.
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
