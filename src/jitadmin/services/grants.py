"""Grant use cases for people: request, look, revoke now, extend, reveal the password."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from jitadmin.core import fields, texts
from jitadmin.core.connectors import ConnectorFamily
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    ConflictError,
    ForbiddenError,
    MisconfiguredError,
    NotFoundError,
    UpstreamUnavailableError,
    ValidationFailedError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import POLICY_ACTOR, Grant, GrantState
from jitadmin.core.naming import requester_local_part
from jitadmin.core.passwords import check_password, generate_password, name_tokens
from jitadmin.core.policy import (
    DEFAULT_MAX_DURATION_MINUTES,
    CustomerPolicy,
    GrantRequest,
    check_duration,
    check_reason,
    validate_request,
)
from jitadmin.ports import AccessSpec, Customer, TicketSystem, UnitOfWork, User
from jitadmin.services import agents
from jitadmin.services.context import (
    ADMIN,
    APPROVER,
    AUDITOR,
    TECHNICIAN,
    ServiceContext,
    require_customer,
    require_role,
)
from jitadmin.services.notifications import notify

S = GrantState


@dataclass(frozen=True)
class RequestedGrant:
    grant: Grant
    password: str


def password_context(grant_id: str) -> str:
    return f"grant:{grant_id}:password"


# What the grant's account data says the technician signs in with (M365 with a TAP policy).
# The pass takes the password's place in the grant's sealed slot (and its context), so it is
# revealed and its key rotated exactly like the password.
TEMPORARY_ACCESS_PASS = "temporary_access_pass"  # noqa: S105 - a credential kind


def credential_of(grant: Grant) -> str:
    """``temporary_access_pass`` once the target issued one for this grant, else ``password``."""
    kind = grant.account.get("credential")
    return TEMPORARY_ACCESS_PASS if kind == TEMPORARY_ACCESS_PASS else "password"


def _max_minutes(customer: Customer) -> int:
    return customer.max_duration_minutes or DEFAULT_MAX_DURATION_MINUTES


def check_ticket(
    ctx: ServiceContext, actor: User, system: TicketSystem, customer: Customer, ticket_id: str
) -> None:
    """Ask the PSA (never a cache) that the ticket is open and the customer's; the call
    spends one of the actor's PSA lookups (429 beyond them, before anything is written)."""
    ctx.psa_lookups.spend(actor, ctx.clock.now())
    try:
        ticket = system.get_ticket(ticket_id)
    except AdapterNotFoundError as error:
        raise ValidationFailedError.single(
            "ticket_id", f"no ticket {ticket_id!r} in the PSA"
        ) from error
    except MisconfiguredError as error:
        raise UpstreamUnavailableError(f"the PSA refused our credentials: {error}") from error
    except AdapterError as error:
        raise UpstreamUnavailableError(f"the PSA did not answer: {error}") from error
    if ticket.company_id != str(customer.psa_company_id):
        raise ValidationFailedError.single(
            "ticket_id", f"ticket {ticket_id} belongs to another customer"
        )
    if ticket.is_closed:
        raise ValidationFailedError.single("ticket_id", f"ticket {ticket_id} is closed")


def request_grant(
    ctx: ServiceContext,
    actor: User,
    *,
    customer: str,
    identity_provider: str,
    ticket_id: str,
    duration_minutes: int,
    reason: str,
    password: str | None = None,
) -> RequestedGrant:
    """Validate everything, then write the grant and its events in one transaction."""
    # Auditors and approvers look; only technicians and admins hold access themselves.
    require_role(actor, ADMIN, TECHNICIAN)
    fields.check(
        {"customer": customer, "identity_provider": identity_provider, "ticket_id": ticket_id,
         "reason": reason, "password": password}
    )  # fmt: skip
    with ctx.uow() as uow:
        found = require_customer(uow, actor, customer)
        # The one connection this request needs, read once: whether it exists is all the
        # policy asks about the customer's identity providers.
        known = ctx.connectors.identity_providers
        connection = (
            uow.connections.get(found.slug, identity_provider)
            if identity_provider in known
            else None
        )
        if identity_provider == agents.AGENT_KIND and not agents.enrolled(uow, found.slug):
            connection = None  # every agent revoked: nothing could run the request

        configured = frozenset() if connection is None else frozenset({identity_provider})
        policy = CustomerPolicy(configured, known, _max_minutes(found))
        request = GrantRequest(
            found.slug, identity_provider, str(ticket_id), duration_minutes, reason
        )
        validate_request(request, policy)
        assert connection is not None  # validate_request refuses an unconfigured provider
        if password is not None:
            check_password(password)
        _refuse_second_grant(ctx, uow, actor.username, found.slug, identity_provider)
        ticket_system = ctx.tickets(uow)
        identity = ctx.identity_from(found, ctx.with_app(uow, connection))
    # Outside calls happen with no transaction open, so they never hold the database.
    check_ticket(ctx, actor, ticket_system, found, request.ticket_id)
    grant_id = str(uuid.uuid4())
    try:
        username = identity.planned_username(grant_id, actor.username)
    except AdapterError as error:
        raise UpstreamUnavailableError(f"the identity provider did not answer: {error}") from error
    # The names the new account will carry (AD builds its displayName from these): Windows
    # refuses a password containing any part of them of 3 or more characters.
    names = (requester_local_part(actor.username), username.split("@")[0], found.domain_prefix)
    secret = password or generate_password(avoid=name_tokens(*names))
    if password is not None:
        check_password(password, account_name=username.split("@")[0], names=names)
    now = ctx.clock.now()
    grant = Grant(
        id=grant_id,
        customer=found.slug,
        identity_provider=identity_provider,
        ticket_id=request.ticket_id,
        requester=actor.username,
        reason=check_reason(reason),
        duration_minutes=duration_minutes,
        created_at=now,
        expires_at=now + timedelta(minutes=duration_minutes),
        username=username,
    )
    requested = AuditEvent(
        kind="grant.requested",
        actor=actor.username,
        at=now,
        grant_id=grant.id,
        customer=grant.customer,
        data={
            "identity_provider": identity_provider,
            "ticket_id": grant.ticket_id,
            "duration_minutes": duration_minutes,
            "reason": grant.reason,
            "username": username,
            "password_chosen_by_requester": password is not None,
        },
    )
    policy_now = found.policy
    if policy_now.needs_approval(identity_provider):
        # Nothing is created in the target until enough approvers said yes; the grant keeps
        # what the policy asks today, whatever the policy says later.
        moved = grant.await_approval(
            policy_now.approvals_needed, policy_now.approval_timeout_minutes, at=now
        )
    else:
        moved = grant.transition(S.PROVISIONING, actor=POLICY_ACTOR, at=now)
    with ctx.uow() as uow:
        # Re-checked inside the write transaction, under a per-requester lock: two racing
        # requests cannot both pass.
        uow.grants.lock_owner(actor.username, found.slug, identity_provider)
        _refuse_second_grant(ctx, uow, actor.username, found.slug, identity_provider)
        uow.grants.add(grant, ctx.box.seal(secret, password_context(grant.id)))
        uow.audit.append(requested)
        uow.audit.append(moved)
        if grant.state is S.PENDING_APPROVAL:
            notify(ctx, uow, "grant.approval_requested", grant, now)
        uow.commit()
    ctx.wake()
    return RequestedGrant(grant, secret)


def _refuse_second_grant(
    ctx: ServiceContext, uow: UnitOfWork, requester: str, customer: str, kind: str
) -> None:
    existing = uow.grants.find_live(requester, customer, kind)
    if existing is not None:
        raise ConflictError(
            f"you already have a {existing.state.value} grant ({existing.id}) for {customer} on "
            f"{kind}; extend it with POST /api/v1/grants/{existing.id}/extend instead",
            existing_id=existing.id,
        )
    # Blast radius: one stolen technician account opens at most this many customers at once.
    cap = ctx.security.max_active_grants_per_user
    elsewhere = uow.grants.live_customers(requester) - {customer}
    if len(elsewhere) >= cap:
        raise ConflictError(
            f"you already hold grants in {len(elsewhere)} customers "
            f"({', '.join(sorted(elsewhere))}); the limit is {cap} customers at once "
            "(JITADMIN_MAX_ACTIVE_GRANTS_PER_USER): revoke one first"
        )
    spec = ctx.connectors.get(kind, ConnectorFamily.IDENTITY_PROVIDER)
    if spec is not None and spec.reuses_accounts:
        # The account (AD's tech account) is re-used: a new grant must not re-enable it while
        # an earlier revocation of that same account is still unverified.
        unverified = [
            grant
            for state in (S.REVOKING, S.REVOKE_FAILED)  # REVOCATION_PENDING
            for grant in uow.grants.find(state=state.value, customer=customer, requester=requester)
            if grant.identity_provider == kind
        ]
        if unverified:
            earlier = unverified[0]
            raise ConflictError(
                f"your earlier {spec.display_name} grant ({earlier.id}) for {customer} is still "
                f"{earlier.state.value}: its tech account is re-used, so a new grant can start "
                "once that revocation is verified",
                existing_id=earlier.id,
            )


def visible_grant(uow: UnitOfWork, actor: User, grant_id: str, *, lock: bool = False) -> Grant:
    fields.check({"grant_id": grant_id})
    grant = uow.grants.get(grant_id, lock=lock)
    if grant is None or not _may_see(actor, grant):
        raise NotFoundError("grant", grant_id)
    return grant


# Who sees every grant of the customers in their scope (others see their own).
SEE_ALL = (ADMIN, AUDITOR, APPROVER)


def _may_see(actor: User, grant: Grant) -> bool:
    """The one rule for every grant route and page: admins, auditors and approvers see all
    grants, others their own; and nobody sees a grant of a customer they are restricted from."""
    if not actor.may_use(grant.customer):
        return False
    return actor.role in SEE_ALL or grant.requester == actor.username


def list_grants(
    ctx: ServiceContext, actor: User, *, state: str | None = None, customer: str | None = None
) -> list[Grant]:
    if state is not None and state not in {s.value for s in GrantState}:
        raise ValidationFailedError.single(
            "state", f"must be one of {', '.join(s.value for s in GrantState)}"
        )
    fields.check({"customer": customer})
    requester = None if actor.role in SEE_ALL else actor.username
    with ctx.uow() as uow:
        found = uow.grants.find(state=state, customer=customer, requester=requester)
    return [g for g in found if _may_see(actor, g)]


def show_grant(ctx: ServiceContext, actor: User, grant_id: str) -> tuple[Grant, list[AuditEvent]]:
    with ctx.uow() as uow:
        grant = visible_grant(uow, actor, grant_id)
        events = [
            AuditEvent(e.kind, e.actor, e.at, e.grant_id, e.customer, e.data, e.credential)
            for e in uow.audit.entries(grant_id=grant_id)
        ]
        return grant, events


def revoke_now(ctx: ServiceContext, actor: User, grant_id: str) -> Grant:
    """Ask for revocation; idempotent for grants already on their way out."""
    with ctx.uow() as uow:
        grant = visible_grant(uow, actor, grant_id, lock=True)
        if actor.role in (AUDITOR, APPROVER):
            raise ForbiddenError(f"{actor.role}s may not revoke grants")
        event = grant.request_revoke(actor=actor.username, at=ctx.clock.now())
        if event is None:
            return grant
        uow.grants.save(grant)
        uow.audit.append(event)
        uow.commit()
    ctx.wake()
    return grant


def extend_grant(ctx: ServiceContext, actor: User, grant_id: str, minutes: object) -> Grant:
    """Move the end of an active grant, on the target first (AD), then in the ledger."""
    with ctx.uow() as uow:
        grant = visible_grant(uow, actor, grant_id)
        if actor.role != ADMIN and grant.requester != actor.username:
            raise ForbiddenError("only the requester or an admin may extend a grant")
        customer = uow.customers.get(grant.customer)
        assert customer is not None
        maximum = _max_minutes(customer)
        check_duration(minutes, maximum, "minutes")
        assert isinstance(minutes, int)
        new_expiry = grant.check_extension(minutes, maximum)
        ticket_system = ctx.tickets(uow)
        identity = ctx.identity_for(uow, customer, grant.identity_provider)
    # The ticket must still be open and the customer's at every extend (no transaction open).
    check_ticket(ctx, actor, ticket_system, customer, grant.ticket_id)
    try:
        identity.extend(AccessSpec(grant.id, grant.requester, "", new_expiry, dict(grant.account)))
    except AdapterError as error:
        raise UpstreamUnavailableError(f"the extension could not be applied: {error}") from error
    with ctx.uow() as uow:
        current = visible_grant(uow, actor, grant_id, lock=True)
        if current.state is not S.ACTIVE or current.expires_at != grant.expires_at:
            raise ConflictError("the grant changed meanwhile; look at it again and retry")
        now = ctx.clock.now()
        extended = current.extend(minutes, until=new_expiry, actor=actor.username, at=now)
        sequence = current.extensions
        uow.grants.save(current)
        uow.audit.append(extended)
        uow.outbox.enqueue(
            current,
            texts.marker(current.id, f"extended-{sequence}"),
            texts.extended_note(current, sequence, minutes),
            now,
        )
        uow.commit()
    ctx.wake()
    return current


__all__ = [
    "RequestedGrant",
    "extend_grant",
    "list_grants",
    "request_grant",
    "revoke_now",
    "show_grant",
]
