"""Sign-in throttling: per username, per client address, and one budget for the installation
(an attempt without a username, an OIDC callback say, only the last two).

``locked_for`` runs before anything else is checked or written: an attempt refused by it costs
one read (no argon2, no row, no audit event; only the ``jitadmin_signin_throttled`` metric).
Only failures that were allowed to happen are counted and audited, so the rows a flood of
anonymous sign-ins can write are bounded by the limits, in the database, for every process.
The failure that reaches a limit also audits the lockout (``auth.sign_in_throttled``), at most
once a window per username, address or (the budget) installation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jitadmin.core.events import AuditEvent
from jitadmin.ports import RecentCount, SignInFailureCounts
from jitadmin.services.context import ServiceContext
from jitadmin.services.limits import retry_after

FAILED = "auth.sign_in_failed"
THROTTLED = "auth.sign_in_throttled"
ANONYMOUS = "anonymous"
MAX_CLIENT = 64  # an IPv6 address with a zone fits; the column is as wide


@dataclass(frozen=True)
class _Limit:
    scope: str  # username | client | global
    subject: str  # what is locked: the username, the address, or "" (everyone)
    allowed: int
    seen: RecentCount

    @property
    def reached(self) -> bool:
        return self.seen.count >= self.allowed


def _limits(
    ctx: ServiceContext, username: str, client: str, counts: SignInFailureCounts
) -> list[_Limit]:
    tuning = ctx.security
    found: list[_Limit] = []
    # No name is nobody's account: a shared "" bucket would let anyone lock out every attempt
    # without one (OIDC callbacks, junk), so those count per address and globally only.
    if username:
        found.append(_Limit("username", username, tuning.signin_failures_per_user, counts.username))
    if client:  # an unknown address is not one address
        found.append(_Limit("client", client, tuning.signin_failures_per_client, counts.client))
    found.append(_Limit("global", "", tuning.signin_failures_global, counts.everyone))
    return found


def _window(ctx: ServiceContext) -> tuple[datetime, timedelta]:
    return ctx.clock.now(), timedelta(minutes=ctx.security.signin_lockout_minutes)


def _wait(
    ctx: ServiceContext, limits: list[_Limit], now: datetime, window: timedelta
) -> int | None:
    """Seconds until every reached limit frees up again, or None when none is reached."""
    reached = [limit for limit in limits if limit.reached]
    for limit in reached:
        ctx.metrics.signin_throttled(limit.scope)
    if not reached:
        return None
    return max(retry_after(limit.seen.oldest, window, now) for limit in reached)


def locked_for(ctx: ServiceContext, username: str, client: str) -> int | None:
    """How long this username or address (or everyone) is locked out; None when not. Reads only."""
    now, window = _window(ctx)
    with ctx.uow() as uow:
        counts = uow.signin_failures.counts(username, client, now - window)
    return _wait(ctx, _limits(ctx, username, client, counts), now, window)


def record_failure(ctx: ServiceContext, username: str, client: str, why: str) -> int | None:
    """Count and audit one failed sign-in, together. Returns the wait instead, writing nothing,
    when a concurrent attempt reached a limit first (recorders queue on the counter's lock)."""
    now, window = _window(ctx)
    since = now - window
    with ctx.uow() as uow:
        counts = uow.signin_failures.counts(username, client, since, lock=True)
        limits = _limits(ctx, username, client, counts)
        wait = _wait(ctx, limits, now, window)
        if wait is not None:
            return wait
        uow.signin_failures.prune(since)
        uow.signin_failures.add(username, client, now)
        attempt = {"username": username, "client": client}
        uow.audit.append(AuditEvent(FAILED, ANONYMOUS, now, data={**attempt, "why": why}))
        for limit in limits:
            locks_now = limit.seen.count + 1 >= limit.allowed
            if locks_now and not uow.signin_failures.lockout_reported(
                limit.scope, limit.subject, since
            ):
                uow.signin_failures.report_lockout(limit.scope, limit.subject, now)
                until = (limit.seen.oldest or now) + window
                data = {**attempt, "scope": limit.scope, "failures": limit.seen.count + 1,
                        "until": until.isoformat()}  # fmt: skip
                uow.audit.append(AuditEvent(THROTTLED, ANONYMOUS, now, data=data))
        uow.commit()
    return None
