"""Signing in with OpenID Connect, once the ID token is validated (adapters/oidc.py): who the
user is, which role and customers its claims give, and the session.

The jitadmin user is the ``preferred_username`` (else a verified ``email``) claim, bound at
its first sign-in to the issuer and ``sub``; role and customers are taken from the claims
again at every sign-in. Claims that map to no role refuse the sign-in and create nothing; an
OIDC user who had signed in before is disabled then (its sessions end, its tokens stop).
Every outcome is audited with the issuer and the ``amr``; each change commits together with
its event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from jitadmin.core import fields
from jitadmin.core.errors import ConflictError
from jitadmin.core.events import AuditEvent
from jitadmin.ports import UnitOfWork, User
from jitadmin.services.context import ADMIN, APPROVER, AUDITOR, TECHNICIAN, ServiceContext
from jitadmin.services.sessions import SessionPolicy, SignedIn, open_session

ACTOR = "system:oidc"  # who the audit log says changed a user at its sign-in
ALL_CUSTOMERS = "*"  # a customers-claim value giving every customer
# Several groups mapping to several roles: the one that can do most wins.
PRECEDENCE = (ADMIN, APPROVER, TECHNICIAN, AUDITOR)
MAX_CLAIM_VALUES = 500
NO_GROUP = "Your account is not in a group that may use jitadmin."


@dataclass(frozen=True)
class OidcPolicy:
    issuer: str
    role_map: Mapping[str, str]
    roles_claim: str = "roles"
    customers_claim: str = ""  # empty: customers are jitadmin's to set (new users: all)
    require_mfa: bool = True


class OidcRefusedError(Exception):
    """A validated ID token whose claims do not let its user in; ``message`` is for them."""

    def __init__(self, message: str, reason: str, *, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class _Claims:
    username: str
    subject: str
    amr: list[str]
    values: list[str] = field(default_factory=list)  # of the roles claim

    def audit(self, policy: OidcPolicy, client: str) -> dict[str, Any]:
        return {"via": "oidc", "issuer": policy.issuer, "amr": self.amr, "client": client}


def _strings(value: Any) -> list[str]:
    """A claim as a list of strings: Entra sends lists, some providers one string."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    return [str(v)[:256] for v in items[:MAX_CLAIM_VALUES] if isinstance(v, str | int)]


def _read(claims: Mapping[str, Any], policy: OidcPolicy) -> _Claims:
    name = claims.get("preferred_username")
    if not name and claims.get("email"):
        # An address the provider did not verify is whatever the user typed into a profile:
        # only ``email_verified: true`` (a JSON boolean, OIDC Core 5.1) makes it a name.
        if claims.get("email_verified") is not True:
            raise OidcRefusedError(
                "Your identity provider sent no user name (preferred_username), and it does "
                "not say your email address is verified, so it cannot stand in for one.",
                "email not verified", status=400,
            )  # fmt: skip
        name = claims["email"]
    subject = claims.get("sub")
    amr = _strings(claims.get("amr"))
    if not isinstance(name, str) or not isinstance(subject, str) or not subject:
        raise OidcRefusedError(
            "Your identity provider sent no user name (preferred_username or email).",
            "no preferred_username or email", status=400,
        )  # fmt: skip
    # Casefolded: AD's tech-account owner compares names lowercased (adapters/ad/account.py),
    # so "Alice@msp" and "alice@msp" must be one jitadmin user, never two.
    name = name.strip().casefold()
    if fields.problems("username", name, fields.LIMITS["username"]) or len(name) < 2:
        raise OidcRefusedError(
            "Your user name cannot be used in jitadmin.", "unusable username", status=400
        )
    return _Claims(name, subject[:255], amr, _strings(claims.get(policy.roles_claim)))


def role_of(values: list[str], role_map: Mapping[str, str]) -> str | None:
    mapped = {role_map[v] for v in values if v in role_map}
    return next((role for role in PRECEDENCE if role in mapped), None)


def _customers(
    uow: UnitOfWork, claims: Mapping[str, Any], policy: OidcPolicy, existing: User | None
) -> tuple[str, ...] | None:
    if not policy.customers_claim:
        # Not the provider's to say: new users get every customer, and an admin's restriction
        # of an existing one (the user page) stays.
        return None if existing is None else existing.customers
    values = _strings(claims.get(policy.customers_claim))
    if ALL_CUSTOMERS in values:
        return None
    # Absent or unknown: no customer (least privilege); known slugs, sorted, once each.
    return tuple(sorted({v for v in values if uow.customers.get(v) is not None}))


def sign_in(
    ctx: ServiceContext, claims: Mapping[str, Any], oidc: OidcPolicy, policy: SessionPolicy, *,
    client: str = "", replaces: str = "",
) -> SignedIn:  # fmt: skip
    """A web session for the user of ``claims`` (a validated ID token), or an
    ``OidcRefusedError`` saying why not (audited; committed before it is raised)."""
    read = _read(claims, oidc)
    try:
        return _sign_in(ctx, read, claims, oidc, policy, client, replaces)
    except ConflictError:
        pass  # a first sign-in of this user committed meanwhile: read it, once
    try:
        return _sign_in(ctx, read, claims, oidc, policy, client, replaces)
    except ConflictError:
        raise OidcRefusedError(
            "Your account was being set up by another sign-in at the same moment. Please "
            "sign in again.", "user created meanwhile", status=409,
        ) from None  # fmt: skip


def _sign_in(
    ctx: ServiceContext, read: _Claims, claims: Mapping[str, Any], oidc: OidcPolicy,
    policy: SessionPolicy, client: str, replaces: str,
) -> SignedIn:  # fmt: skip
    role = role_of(read.values, oidc.role_map)
    with ctx.uow() as uow:
        existing, bound = _named(uow, read, oidc)
        refusal = _refusal(uow, read, oidc, existing, bound, role)
        if refusal is not None or role is None:
            # Whatever the refusal says first (MFA, a renamed account), the user of this very
            # issuer and sub, whose claims map to no role any more, is disabled at this sign-in.
            lost = uow.users.by_external(oidc.issuer, read.subject) if role is None else None
            _refuse(ctx, uow, read, oidc, client, refusal or _no_role(), lost)
        customers = _customers(uow, claims, oidc, existing)
        now = ctx.clock.now()
        if existing is None:
            user = User(read.username, role, customers)
            uow.users.add_external(user, oidc.issuer, read.subject, now)
            event = {"user": user.username, "role": role, "customers": _listed(customers),
                     "issuer": oidc.issuer}  # fmt: skip
            uow.audit.append(AuditEvent("user.created", ACTOR, now, data=event))
        else:
            user = replace(existing, role=role, customers=customers)
            if user != existing:
                uow.users.update(user)
                changes = {
                    name: {"from": _listed(getattr(existing, name)),
                           "to": _listed(getattr(user, name))}
                    for name in ("role", "customers")
                    if getattr(existing, name) != getattr(user, name)
                }  # fmt: skip
                uow.audit.append(
                    AuditEvent("user.updated", ACTOR, now, data={"user": user.username,
                               "changes": changes, "issuer": oidc.issuer})
                )  # fmt: skip
        signed = open_session(
            ctx, uow, user, policy, replaces=replaces,
            audit={**read.audit(oidc, client), "role": role},
        )  # fmt: skip
        uow.commit()
    return signed


def _refusal(
    uow: UnitOfWork, read: _Claims, oidc: OidcPolicy, existing: User | None,
    bound: tuple[str, str] | None, role: str | None,
) -> OidcRefusedError | None:  # fmt: skip
    if (refusal := _identity_refusal(uow, read, oidc, existing, bound)) is not None:
        return refusal
    if oidc.require_mfa and "mfa" not in read.amr:
        return OidcRefusedError(
            "jitadmin needs a sign-in with multi-factor authentication, and your identity "
            "provider says this one had none. Sign in again with MFA, or ask your "
            "administrator to require MFA for jitadmin.",
            "no mfa in amr",
        )  # fmt: skip
    if role is None:
        return _no_role()
    if existing is not None and existing.disabled:
        return OidcRefusedError(
            "This account is disabled. Ask a jitadmin administrator to enable it.",
            "account disabled",
        )
    return None


def _no_role() -> OidcRefusedError:
    return OidcRefusedError(NO_GROUP, "no role in the claims")


def _named(
    uow: UnitOfWork, read: _Claims, oidc: OidcPolicy
) -> tuple[User | None, tuple[str, str] | None]:
    """The user this name is, ignoring case, and its binding (None: local or none). A local
    account or another identity's name wins over ours, so the guards below refuse them."""
    alike = uow.users.named_alike(read.username)
    mine = (oidc.issuer, read.subject)
    ranked = sorted(alike, key=lambda found: (found[1] == mine, found[1] is not None))
    if not ranked:
        return None, None
    name, identity = ranked[0]
    return uow.users.get(name), identity


def _identity_refusal(
    uow: UnitOfWork, read: _Claims, oidc: OidcPolicy, existing: User | None,
    bound: tuple[str, str] | None,
) -> OidcRefusedError | None:  # fmt: skip
    """Whether the name and ``sub`` may be this jitadmin user (or become a new one)."""
    if existing is not None and bound is None:
        # Never take over a local (break-glass) account by naming it at the identity provider.
        return OidcRefusedError(
            f"A local jitadmin account is already called {existing.username}; it cannot be used "
            "through single sign-on. Ask a jitadmin administrator.",
            "a local account has this name", status=409,
        )  # fmt: skip
    if bound is not None and bound != (oidc.issuer, read.subject):
        # The name now belongs to another account at the provider (a reused UPN, say).
        return OidcRefusedError(
            f"The jitadmin user {read.username} belongs to another account of your identity "
            "provider. Ask a jitadmin administrator.",
            "username bound to another issuer or subject", status=409,
        )  # fmt: skip
    if existing is None and (other := uow.users.by_external(oidc.issuer, read.subject)):
        return OidcRefusedError(
            f"Your account signed in to jitadmin before as {other.username}, and its user "
            "name has changed since. Ask a jitadmin administrator.",
            f"subject already signs in as {other.username}", status=409,
        )  # fmt: skip
    return None


def _refuse(
    ctx: ServiceContext, uow: UnitOfWork, read: _Claims, oidc: OidcPolicy, client: str,
    refusal: OidcRefusedError, lost_role: User | None,
) -> NoReturn:  # fmt: skip
    """Audit the refusal (and disable ``lost_role``: the OIDC user of these claims, which map
    to no role any more), commit, raise."""
    now = ctx.clock.now()
    data = {**read.audit(oidc, client), "user": read.username, "reason": refusal.reason}
    uow.audit.append(AuditEvent("auth.oidc_refused", ACTOR, now, data=data))
    oidc_user = lost_role
    if oidc_user is not None and not oidc_user.disabled:
        uow.users.update(replace(oidc_user, disabled=True))
        ended = uow.web_sessions.delete_for_user(oidc_user.username)
        event = {"user": oidc_user.username, "sessions": ended, "issuer": oidc.issuer,
                 "reason": "the identity provider's claims map to no role"}  # fmt: skip
        uow.audit.append(AuditEvent("user.disabled", ACTOR, now, data=event))
    uow.commit()
    raise refusal


def _listed(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
