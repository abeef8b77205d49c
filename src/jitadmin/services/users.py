"""The user lifecycle: show a user, change its role, customers or disabled state, reset its
password, end its web sessions.

Each change and its audit event are one transaction. An admin restricted to some customers
manages only users whose customers all lie inside its own (any other user does not exist for
it: 404), and may give them only customers inside its scope (403 naming ``customers``).
Nobody changes their own account here (an admin cannot lock itself out, or promote itself).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher

from jitadmin.core import fields
from jitadmin.core.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationFailedError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import UNFINISHED, GrantState
from jitadmin.ports import UnitOfWork, User
from jitadmin.services import approvals, grants
from jitadmin.services.context import (
    ADMIN,
    ROLES,
    ServiceContext,
    require_role,
    require_scope,
)

_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserDetail:
    user: User
    created_at: datetime | None
    sessions: int  # open web sessions
    tokens: int  # API tokens (a disabled user's open nothing)
    second_factor: bool = False  # a confirmed TOTP enrolment
    # The issuer an OpenID Connect user signs in through (services/oidc_signin); None: local.
    oidc_issuer: str | None = None


@dataclass(frozen=True)
class UserChange:
    """What a PATCH asks for; None: leave as it is. ``customers`` only counts when
    ``set_customers`` (then None means every customer)."""

    role: str | None = None
    customers: tuple[str, ...] | None = None
    set_customers: bool = False
    disabled: bool | None = None
    revoke_grants: bool = False

    @property
    def empty(self) -> bool:
        return self.role is None and not self.set_customers and self.disabled is None


@dataclass(frozen=True)
class UserUpdated:
    detail: UserDetail
    sessions_ended: int = 0
    revoked_grants: list[str] = field(default_factory=list)
    # Unfinished grants the revoke path refused: (grant id, why).
    not_revoked: list[tuple[str, str]] = field(default_factory=list)


def _managed(uow: UnitOfWork, actor: User, username: str) -> User:
    """The user ``actor`` manages under that name, or 404 (unknown, or outside its scope)."""
    user = uow.users.get(username)
    if user is None or not actor.covers(user.customers):
        raise NotFoundError("user", username)
    return user


def _checked(actor: User, username: str) -> None:
    require_role(actor, ADMIN)
    fields.check({"username": username})


def _not_yourself(actor: User, username: str, what: str) -> None:
    if username == actor.username:
        raise ForbiddenError(f"{what}: you cannot do this to your own account; ask another admin")


def _event(ctx: ServiceContext, kind: str, actor: User, **data: Any) -> AuditEvent:
    return AuditEvent(kind, actor.username, ctx.clock.now(), data=data)


def _detail(uow: UnitOfWork, user: User) -> UserDetail:
    tokens = sum(1 for t in uow.api_tokens.all() if t.username == user.username)
    factor = uow.second_factors.get(user.username)
    external = uow.users.external_identity(user.username)
    return UserDetail(
        user,
        uow.users.created_at(user.username),
        uow.web_sessions.count_for_user(user.username),
        tokens,
        factor is not None and factor.confirmed_at is not None,
        None if external is None else external[0],
    )


def show_user(ctx: ServiceContext, actor: User, username: str) -> UserDetail:
    _checked(actor, username)
    with ctx.uow() as uow:
        return _detail(uow, _managed(uow, actor, username))


def _validate(actor: User, change: UserChange) -> None:
    customers = None if change.customers is None else list(change.customers)
    fields.check({"role": change.role, "customers": customers})
    if change.empty:
        raise ValidationFailedError.single(
            "role", "give at least one of role, customers or disabled to change"
        )
    if change.role is not None and change.role not in ROLES:
        raise ValidationFailedError.single("role", f"must be one of {', '.join(ROLES)}")


def update_user(ctx: ServiceContext, actor: User, username: str, change: UserChange) -> UserUpdated:
    """Change role, customers and/or disabled. Disabling ends every web session of the user in
    the same transaction, and its API tokens stop (the token look-up skips disabled users);
    ``revoke_grants`` then asks for revocation of each unfinished grant of the user through the
    normal revoke path (the worker revokes and notes the tickets)."""
    _checked(actor, username)
    _validate(actor, change)
    _not_yourself(actor, username, "username")
    with ctx.uow() as uow:
        before = _managed(uow, actor, username)
        if change.set_customers:  # after the look-up: a user outside the scope is a 404 first
            require_scope(actor, change.customers, "customers")
        for slug in (change.customers or ()) if change.set_customers else ():
            if uow.customers.get(slug) is None:
                raise ValidationFailedError.single("customers", f"no customer {slug!r}")
        after = replace(
            before,
            role=change.role if change.role is not None else before.role,
            customers=change.customers if change.set_customers else before.customers,
            disabled=change.disabled if change.disabled is not None else before.disabled,
        )
        uow.users.update(after)
        changed = {
            name: {"from": _shown(getattr(before, name)), "to": _shown(getattr(after, name))}
            for name in ("role", "customers")
            if getattr(before, name) != getattr(after, name)
        }
        if changed:
            uow.audit.append(_event(ctx, "user.updated", actor, user=username, changes=changed))
        ended = 0
        if after.disabled and not before.disabled:
            ended = uow.web_sessions.delete_for_user(username)
            uow.audit.append(_event(ctx, "user.disabled", actor, user=username, sessions=ended))
        elif before.disabled and not after.disabled:
            uow.audit.append(_event(ctx, "user.enabled", actor, user=username))
        uow.commit()
        detail = _detail(uow, after)
    revoked, refused = _revoke_grants(ctx, actor, username) if change.revoke_grants else ([], [])
    return UserUpdated(detail, ended, revoked, refused)


def _shown(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _revoke_grants(
    ctx: ServiceContext, actor: User, username: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """Each unfinished grant of ``username`` through ``grants.revoke_now`` (its own transaction
    and audit event, as if the admin had pressed Revoke on it); a request still waiting for
    approval is cancelled instead (nothing was created for it)."""
    with ctx.uow() as uow:
        unfinished = [
            (g.id, g.state)
            for g in uow.grants.find(requester=username, limit=10_000)
            if g.state in UNFINISHED
        ]
    revoked: list[str] = []
    refused: list[tuple[str, str]] = []
    for grant_id, state in unfinished:
        try:
            if state is GrantState.PENDING_APPROVAL:
                approvals.cancel(ctx, actor, grant_id)
            else:
                grants.revoke_now(ctx, actor, grant_id)
            revoked.append(grant_id)
        except (ConflictError, NotFoundError, ForbiddenError) as error:
            refused.append((grant_id, str(error)))
    return revoked, refused


@dataclass(frozen=True)
class PasswordReset:
    username: str
    password: str  # shown this once; only its argon2id hash is stored
    sessions_ended: int


def reset_password(ctx: ServiceContext, actor: User, username: str) -> PasswordReset:
    """A new generated password; the old one stops working and every web session of the user
    ends (whoever held the old password may be signed in). API tokens are left alone.
    An OpenID Connect user has no password to reset: a local one would get round the identity
    provider (its groups, its MFA)."""
    _checked(actor, username)
    _not_yourself(actor, username, "username")
    password = secrets.token_urlsafe(18)
    hashed = _hasher.hash(password)
    with ctx.uow() as uow:
        _managed(uow, actor, username)
        if (external := uow.users.external_identity(username)) is not None:
            raise ConflictError(
                f"{username} signs in through {external[0]} (single sign-on) and has no "
                "jitadmin password; reset it at the identity provider"
            )
        uow.users.set_password_hash(username, hashed)
        ended = uow.web_sessions.delete_for_user(username)
        uow.audit.append(_event(ctx, "user.password_reset", actor, user=username, sessions=ended))
        uow.commit()
    return PasswordReset(username, password, ended)


def end_sessions(ctx: ServiceContext, actor: User, username: str) -> int:
    """End every web session of the user (signed out everywhere); how many there were."""
    _checked(actor, username)
    with ctx.uow() as uow:
        _managed(uow, actor, username)
        ended = uow.web_sessions.delete_for_user(username)
        uow.audit.append(_event(ctx, "user.sessions_ended", actor, user=username, sessions=ended))
        uow.commit()
    return ended


def reset_second_factor(ctx: ServiceContext, actor: User, username: str) -> bool:
    """Remove the user's TOTP enrolment and recovery codes (a lost phone): they enrol again at
    their next sign-in. Their web sessions end. False when there was none (nothing written)."""
    _checked(actor, username)
    _not_yourself(actor, username, "username")
    with ctx.uow() as uow:
        _managed(uow, actor, username)
        if uow.second_factors.get(username, lock=True) is None:
            return False
        uow.second_factors.put(username, None)
        ended = uow.web_sessions.delete_for_user(username)
        uow.audit.append(
            _event(ctx, "user.second_factor_reset", actor, user=username, sessions=ended)
        )
        uow.commit()
    return True
