"""A second factor for local (break-glass) accounts: TOTP enrolment, codes, recovery codes.

The secret is sealed with the user's name as associated data; recovery codes are stored as
keyed hashes (they are 50 random bits each, typed by hand, used once). A code is accepted once:
the time step it belongs to must be later than the last one accepted (one conditional UPDATE,
so two requests with the same code cannot both pass). Enrolment is confirmed by a first code,
which is when the recovery codes are made and shown, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from jitadmin.core import totp
from jitadmin.core.errors import ConflictError, ValidationFailedError
from jitadmin.core.events import AuditEvent
from jitadmin.ports import SecondFactor, UnitOfWork, User
from jitadmin.services.context import ServiceContext

RECOVERY_PURPOSE = "totp-recovery"
RECOVERY_CODES = 10


def secret_context(username: str) -> str:
    return f"user:{username}:totp"


@dataclass(frozen=True)
class Enrolment:
    secret: str  # shown to the user to type into an authenticator app
    uri: str  # the otpauth:// URI (what a QR code would carry)


def required_for(ctx: ServiceContext, user: User) -> bool:
    """Whether ``user``'s role must sign in with a second factor."""
    return user.role in ctx.security.totp_required_roles


def enrolled(ctx: ServiceContext, username: str) -> bool:
    with ctx.uow() as uow:
        factor = uow.second_factors.get(username)
    return factor is not None and factor.confirmed_at is not None


def start_enrolment(ctx: ServiceContext, user: User) -> Enrolment:
    """A new secret for ``user`` (themselves), not used until confirmed by a first code."""
    secret = totp.new_secret()
    with ctx.uow() as uow:
        current = uow.second_factors.get(user.username, lock=True)
        if current is not None and current.confirmed_at is not None:
            raise ConflictError(
                "a second factor is enrolled already; an admin can reset it to enrol again"
            )
        sealed = ctx.box.seal(secret, secret_context(user.username))
        uow.second_factors.put(user.username, SecondFactor(sealed))
        uow.audit.append(AuditEvent("user.totp_enrolment_started", user.username, ctx.clock.now()))
        uow.commit()
    return Enrolment(secret, totp.otpauth_uri(secret, user.username))


def pending_enrolment(ctx: ServiceContext, user: User) -> Enrolment | None:
    """The enrolment ``user`` started and has not confirmed yet (to show it again)."""
    with ctx.uow() as uow:
        factor = uow.second_factors.get(user.username)
    if factor is None or factor.confirmed_at is not None:
        return None
    secret = ctx.box.open(factor.secret_sealed, secret_context(user.username))
    return Enrolment(secret, totp.otpauth_uri(secret, user.username))


def recovery_codes_left(ctx: ServiceContext, username: str) -> int:
    with ctx.uow() as uow:
        factor = uow.second_factors.get(username)
    return 0 if factor is None else len(factor.recovery_hashes)


def enrol(ctx: ServiceContext, username: str) -> Enrolment:
    """Enrol and confirm at once, no code typed (the demo, which prints the secret itself)."""
    with ctx.uow() as uow:
        user = uow.users.get(username)
    if user is None:
        raise ValidationFailedError.single("username", f"no user {username!r}")
    started = start_enrolment(ctx, user)
    _confirm(ctx, user, None)
    return started


def _step(ctx: ServiceContext, username: str, factor: SecondFactor, code: str) -> int | None:
    secret = ctx.box.open(factor.secret_sealed, secret_context(username))
    return totp.matching_step(secret, code, ctx.clock.now().timestamp())


def confirm_enrolment(ctx: ServiceContext, user: User, code: str) -> list[str]:
    """Confirm with a first code; returns the recovery codes, shown this once."""
    return _confirm(ctx, user, code)


def _confirm(ctx: ServiceContext, user: User, code: str | None) -> list[str]:
    codes = [totp.new_recovery_code() for _ in range(RECOVERY_CODES)]
    with ctx.uow() as uow:
        factor = uow.second_factors.get(user.username, lock=True)
        if factor is None or factor.confirmed_at is not None:
            raise ConflictError("no enrolment is waiting to be confirmed; start again")
        # The confirming code is used up; without one (the demo) no step is used yet.
        step = None if code is None else _step(ctx, user.username, factor, code)
        if code is not None and step is None:
            raise ValidationFailedError.single(
                "code", "does not match; type the 6 digits your app shows now"
            )
        hashes = tuple(
            ctx.box.digests(RECOVERY_PURPOSE, totp.normal_recovery_code(c))[0] for c in codes
        )
        now = ctx.clock.now()
        uow.second_factors.put(user.username, SecondFactor(factor.secret_sealed, now, step, hashes))
        uow.audit.append(
            AuditEvent(
                "user.totp_enrolled", user.username, now, data={"recovery_codes": len(codes)}
            )
        )
        uow.commit()
    return codes


def check(ctx: ServiceContext, uow: UnitOfWork, username: str, code: str) -> str | None:
    """Spend ``code`` for ``username`` inside the caller's transaction: ``"totp"`` or
    ``"recovery_code"`` when it is good (and now used up), None when it is wrong or used."""
    factor = uow.second_factors.get(username, lock=True)
    if factor is None or factor.confirmed_at is None or not code.strip():
        return None
    step = _step(ctx, username, factor, code)
    if step is not None:
        return "totp" if uow.second_factors.use_step(username, step) else None
    typed = totp.normal_recovery_code(code)
    for digest in ctx.box.digests(RECOVERY_PURPOSE, typed):
        if digest in factor.recovery_hashes:
            left = tuple(h for h in factor.recovery_hashes if h != digest)
            uow.second_factors.put(
                username,
                SecondFactor(factor.secret_sealed, factor.confirmed_at, factor.last_step, left),
            )
            return "recovery_code"
    return None
