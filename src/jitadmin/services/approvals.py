"""Approvals: each customer's policy, and approving, rejecting or cancelling a request.

A request whose identity provider the customer's policy lists waits in ``pending_approval``
(nothing exists in the target) until enough approvers said yes; the worker expires it when its
window is over (``services/execution.py``). The rules on the grant are in ``core/grant.py``.
"""

from __future__ import annotations

from dataclasses import asdict

from jitadmin.core import fields, texts
from jitadmin.core.errors import ForbiddenError, ValidationFailedError
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant, GrantState
from jitadmin.core.policy import ApprovalPolicy, check_policy
from jitadmin.ports import Customer, UnitOfWork, User
from jitadmin.services.context import (
    ADMIN,
    APPROVER,
    TECHNICIAN,
    ServiceContext,
    require_customer,
    require_role,
)
from jitadmin.services.grants import check_ticket, visible_grant
from jitadmin.services.notifications import notify

# Who may decide on another person's request (within their customer scope).
DECIDERS = (ADMIN, APPROVER)


# -- the policy ---------------------------------------------------------------------------


def get_policy(ctx: ServiceContext, actor: User, slug: str) -> ApprovalPolicy:
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        return require_customer(uow, actor, slug, "path").policy


def put_policy(
    ctx: ServiceContext,
    actor: User,
    slug: str,
    *,
    max_duration_minutes: object = None,
    approval_required: object = None,
    approvals_needed: object = None,
    approval_timeout_minutes: object = None,
) -> ApprovalPolicy:
    """Replace the named parts of the policy (an omitted one keeps its value). Requests
    already pending keep what they were asked at request time."""
    require_role(actor, ADMIN)
    fields.check({"approval_required": approval_required})
    with ctx.uow() as uow:
        customer = require_customer(uow, actor, slug, "path")
        before = customer.policy

        def given(value: object, current: object) -> object:
            return current if value is None else value

        policy = check_policy(
            max_duration_minutes=given(max_duration_minutes, before.max_duration_minutes),
            approval_required=given(approval_required, list(before.approval_required)),
            approvals_needed=given(approvals_needed, before.approvals_needed),
            approval_timeout_minutes=given(
                approval_timeout_minutes, before.approval_timeout_minutes
            ),
            known_identity_providers=ctx.connectors.identity_providers,
        )
        if policy != before:
            uow.customers.set_policy(customer.slug, policy)
            uow.audit.append(
                AuditEvent(
                    kind="customer.policy_changed", actor=actor.username, at=ctx.clock.now(),
                    customer=customer.slug,
                    data={"from": _plain(before), "to": _plain(policy)},
                )
            )  # fmt: skip
            uow.commit()
    return policy


def _plain(policy: ApprovalPolicy) -> dict[str, object]:
    shown = asdict(policy)
    shown["approval_required"] = list(policy.approval_required)
    return shown


# -- deciding -------------------------------------------------------------------------------


def _decider_grant(uow: UnitOfWork, actor: User, grant_id: str, *, lock: bool = False) -> Grant:
    """The grant ``actor`` decides on: an approver or admin (403 otherwise) whose customer
    scope holds it (404 otherwise, as for every grant route)."""
    require_role(actor, *DECIDERS)
    return visible_grant(uow, actor, grant_id, lock=lock)


def _comment(comment: str | None) -> str | None:
    fields.check({"comment": comment})
    cleaned = (comment or "").strip()
    return cleaned or None


def _check_requester(uow: UnitOfWork, grant: Grant) -> None:
    """The requester must still be someone who may hold access to this customer."""
    requester = uow.users.get(grant.requester)
    if requester is None or requester.disabled or requester.role not in (ADMIN, TECHNICIAN):
        raise ValidationFailedError.single(
            "requester", f"{grant.requester} may no longer request admin access"
        )
    if not requester.may_use(grant.customer):
        raise ValidationFailedError.single(
            "requester", f"{grant.requester} may no longer use customer {grant.customer}"
        )


def approve(ctx: ServiceContext, actor: User, grant_id: str, comment: str | None) -> Grant:
    """Record ``actor``'s approval; the last one needed starts provisioning. First re-checks,
    outside any transaction, that the ticket is still open and the customer's (422 naming
    ``ticket_id``, nothing changed) and that the requester may still use the customer."""
    cleaned = _comment(comment)
    with ctx.uow() as uow:
        grant = _decider_grant(uow, actor, grant_id)
        grant.check_approval(actor.username, ctx.clock.now())
        _check_requester(uow, grant)
        customer = uow.customers.get(grant.customer)
        assert isinstance(customer, Customer), "grants always belong to a customer"
        ticket_system = ctx.tickets(uow)
    check_ticket(ctx, actor, ticket_system, customer, grant.ticket_id)
    with ctx.uow() as uow:
        current = _decider_grant(uow, actor, grant_id, lock=True)
        # Re-checked under the row lock: a second approval racing this one, or the same
        # approver twice, cannot both count.
        now = ctx.clock.now()
        events = current.approve(actor=actor.username, comment=cleaned, at=now)
        uow.grants.save(current)
        for event in events:
            uow.audit.append(event)
        if current.state is not GrantState.PENDING_APPROVAL:
            notify(ctx, uow, "grant.approved", current, now, approved_by=actor.username)
        uow.commit()
    ctx.wake()
    return current


def reject(ctx: ServiceContext, actor: User, grant_id: str, comment: str | None) -> Grant:
    """End the request (a comment is required); nothing was created, the ticket is told."""
    cleaned = _comment(comment)
    with ctx.uow() as uow:
        grant = _decider_grant(uow, actor, grant_id, lock=True)
        now = ctx.clock.now()
        event = grant.reject(actor=actor.username, comment=cleaned or "", at=now)
        uow.grants.save(grant)
        uow.grants.set_password_sealed(grant.id, None)
        uow.audit.append(event)
        notify(ctx, uow, "grant.rejected", grant, now, rejected_by=actor.username)
        uow.outbox.enqueue(
            grant,
            texts.marker(grant.id, "rejected"),
            texts.rejected_note(grant, actor.username, cleaned or ""),
            now,
        )
        uow.commit()
    ctx.wake()
    return grant


def cancel(ctx: ServiceContext, actor: User, grant_id: str) -> Grant:
    """The requester (or an admin) withdraws a request still waiting for approval."""
    with ctx.uow() as uow:
        grant = visible_grant(uow, actor, grant_id, lock=True)
        if actor.role != ADMIN and grant.requester != actor.username:
            raise ForbiddenError("only the requester or an admin may cancel a request")
        event = grant.cancel(actor=actor.username, at=ctx.clock.now())
        uow.grants.save(grant)
        uow.grants.set_password_sealed(grant.id, None)
        uow.audit.append(event)
        uow.commit()
    return grant


def pending(ctx: ServiceContext, actor: User) -> list[Grant]:
    """The requests ``actor`` may decide on: pending, in scope, not their own."""
    require_role(actor, *DECIDERS)
    with ctx.uow() as uow:
        found = uow.grants.find(state="pending_approval")
    return [g for g in found if actor.may_use(g.customer) and g.requester != actor.username]


__all__ = ["approve", "cancel", "get_policy", "pending", "put_policy", "reject"]
