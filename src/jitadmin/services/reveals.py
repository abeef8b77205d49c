"""Revealing a grant's password again: admins only, with a reason, audited, rate limited.

Two limits hold at once: per admin (``reveal_limit_per_hour``) and for all admins together
(``reveal_limit_global_per_hour``), so a rogue admin gains nothing by creating more admins.
Crossing the installation's limit is an alert: an audit event and a metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from jitadmin.core import fields
from jitadmin.core.errors import (
    ConflictError,
    ForbiddenError,
    RateLimitedError,
    ValidationFailedError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant, GrantState
from jitadmin.ports import AuditQuery, UnitOfWork, User
from jitadmin.services.context import ADMIN, APPROVER, AUDITOR, ServiceContext, require_role
from jitadmin.services.grants import (
    TEMPORARY_ACCESS_PASS,
    credential_of,
    password_context,
    visible_grant,
)
from jitadmin.services.limits import count_recent, retry_after
from jitadmin.services.notifications import notify

TAP_SHOWN = "grant.temporary_access_pass_shown"


def reveal_password(ctx: ServiceContext, actor: User, grant_id: str, reason: str | None) -> str:
    """Admins only, with a reason, at most ``reveal_limit_per_hour`` per admin and
    ``reveal_limit_global_per_hour`` for all admins together; the reveal (or its refusal) is
    audited before anything leaves this function."""
    require_role(actor, ADMIN)
    fields.check({"grant_id": grant_id, "reason": reason}, {"reason": fields.REVEAL_REASON})
    why = (reason or "").strip()
    if not why:
        raise ValidationFailedError.single("reason", "say why you need the password (audited)")
    with ctx.uow() as uow:
        grant = visible_grant(uow, actor, grant_id)
        sealed = uow.grants.password_sealed(grant_id)
        if sealed is None or grant.is_finished:
            raise ConflictError("this grant's password no longer exists (the grant has ended)")
        password = ctx.box.open(sealed, password_context(grant_id))
        uow.audit.append(
            AuditEvent(
                kind="grant.password_revealed",
                actor=actor.username,
                at=ctx.clock.now(),
                grant_id=grant.id,
                customer=grant.customer,
                data={"reason": why[:500]},
            )
        )
        # Counted with this reveal already appended: appending holds the chain's lock until the
        # commit, so concurrent reveals are counted one after another and none slips past.
        refusal = _over_limit(ctx, uow, actor)
        if refusal is None:
            notify(ctx, uow, "grant.password_revealed", grant, ctx.clock.now(),
                   revealed_by=actor.username)  # fmt: skip
            uow.commit()
            return password
    # Rolled back: nothing was revealed. The refusal is its own transaction.
    raise _refuse_reveal(ctx, actor, grant, refusal)


def show_temporary_access_pass(ctx: ServiceContext, actor: User, grant_id: str) -> str:
    """The pass the target issued for the requester's active grant, once (like the password on
    the request's result); after that only an admin's audited reveal shows it."""
    with ctx.uow() as uow:
        grant = visible_grant(uow, actor, grant_id, lock=True)  # one show at a time
        if actor.role in (AUDITOR, APPROVER) or grant.requester != actor.username:
            raise ForbiddenError(
                "only the requester sees the Temporary Access Pass, once; an admin can reveal "
                f"it with POST /api/v1/grants/{grant_id}/password (audited)"
            )
        if credential_of(grant) != TEMPORARY_ACCESS_PASS or grant.state is not GrantState.ACTIVE:
            notice = grant.account.get("credential_notice")
            raise ConflictError(
                "this grant has no Temporary Access Pass"
                + (f" ({notice})" if isinstance(notice, str) else "")
                + (": sign in with the password" if not grant.is_finished else "")
            )
        if uow.audit.count(AuditQuery(grant_id=grant_id, kind=TAP_SHOWN)).count:
            raise ConflictError(
                "the Temporary Access Pass was already shown once; an admin can reveal it "
                f"(POST /api/v1/grants/{grant_id}/password, audited)"
            )
        sealed = uow.grants.password_sealed(grant_id)
        if sealed is None:
            raise ConflictError("this grant's Temporary Access Pass no longer exists")
        secret = ctx.box.open(sealed, password_context(grant_id))
        uow.audit.append(
            AuditEvent(TAP_SHOWN, actor.username, ctx.clock.now(), grant.id, grant.customer, {})
        )
        uow.commit()
    return secret


@dataclass(frozen=True)
class _RevealRefusal:
    scope: str  # "admin" or "installation"
    limit: int
    count: int  # reveals in the window before this one
    retry_after_s: int


def _over_limit(ctx: ServiceContext, uow: UnitOfWork, actor: User) -> _RevealRefusal | None:
    now, window = ctx.clock.now(), timedelta(hours=1)
    kind, since = "grant.password_revealed", now - window
    for scope, limit, by in (
        ("admin", ctx.security.reveal_limit_per_hour, actor.username),
        ("installation", ctx.security.reveal_limit_global_per_hour, None),
    ):
        done, oldest = count_recent(uow, kind, since, actor=by)
        if done > limit:
            return _RevealRefusal(scope, limit, done - 1, retry_after(oldest, window, now))
    return None


def _refuse_reveal(
    ctx: ServiceContext, actor: User, grant: Grant, refusal: _RevealRefusal
) -> RateLimitedError:
    """Record the refusal (and, for the installation's limit, an alert); the error to raise."""
    now = ctx.clock.now()
    data = {"why": "rate limit", "scope": refusal.scope, "count": refusal.count,
            "limit": refusal.limit}  # fmt: skip
    kinds = ["grant.password_reveal_refused"]
    if refusal.scope == "installation":
        # Many reveals across admins is what a rogue admin with helpers looks like: alert.
        kinds.append("alert.reveal_limit_exceeded")
    with ctx.uow() as uow:
        for kind in kinds:
            uow.audit.append(AuditEvent(kind, actor.username, now, grant.id, grant.customer, data))
        uow.commit()
    if refusal.scope == "installation":
        ctx.metrics.security_alert("reveal_limit_exceeded")
    per = "per hour" if refusal.scope == "admin" else "per hour for all admins together"
    message = f"at most {refusal.limit} password reveals {per}"
    return RateLimitedError(message, refusal.retry_after_s)
