"""How long failed work waits: its attempt's backoff and the server's Retry-After, bounded.

A ``Retry-After`` is honoured up to ``MAX_RETRY_AFTER_S`` (one hour), and up to
``MAX_REVOKE_RETRY_AFTER_S`` (five minutes) for revocation work (``Grant.retry_limit_s``).
A server that asked for more is broken or hostile and someone should look: that is an alert
(audit event ``worker.retry_after_clamped``,
``jitadmin_security_alerts{kind="retry_after_clamped"}``, and a log line).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import WORKER_ACTOR
from jitadmin.core.retry import RETRY_AFTER_CEILING_S
from jitadmin.ports import UnitOfWork
from jitadmin.services.context import ServiceContext, log

SYSTEM = WORKER_ACTOR
CLAMPED = "worker.retry_after_clamped"
ALERT = "retry_after_clamped"  # the security-alert metric's kind


def asked_retry_after(error: BaseException) -> float | None:
    """The error's ``retry_after_s`` as a finite, non-negative number of seconds, or None."""
    value = getattr(error, "retry_after_s", None)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return None if value < 0 else float(min(value, RETRY_AFTER_CEILING_S))


def honoured_retry_after(
    ctx: ServiceContext,
    uow: UnitOfWork,
    error: BaseException,
    *,
    limit_s: float,
    work: str,
    connector: str,
    grant_id: str,
    customer: str,
) -> float | None:
    """The Retry-After to honour; above ``limit_s`` it is cut to it and alerted, in ``uow``."""
    asked = asked_retry_after(error)
    if asked is None or asked <= limit_s:
        return asked
    uow.audit.append(
        AuditEvent(
            kind=CLAMPED,
            actor=SYSTEM,
            at=ctx.clock.now(),
            grant_id=grant_id,
            customer=customer,
            data={"connector": connector, "work": work, "asked_s": asked, "used_s": limit_s},
        )
    )
    ctx.metrics.security_alert(ALERT)
    log.warning(
        "%s asked to wait %.0f s before retrying %s of grant %s; waiting %.0f s instead",
        connector, asked, work, grant_id, limit_s,
    )  # fmt: skip
    return limit_s


def next_attempt(
    ctx: ServiceContext, attempts: int, retry_after_s: float | None, limit_s: float
) -> datetime:
    """When attempt ``attempts + 1`` of a ticket note is due: exponential backoff with
    jitter, never earlier than ``retry_after_s``, never later than ``limit_s`` from now (a
    grant's own attempts: ``Grant.record_failure``)."""
    delay = min(ctx.retry.delay(max(attempts, 1), retry_after_s), limit_s)
    return ctx.clock.now() + timedelta(seconds=delay)
