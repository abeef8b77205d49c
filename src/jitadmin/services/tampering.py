"""Tampering: an account jitadmin created whose tag, name or UPN was changed on the target.

Revocation goes by the object id recorded at creation, so tampering never stops it; it is made
loud instead: an audit event (``account.tampering_detected``), one ticket note per grant and the
``jitadmin_tampering_total`` metric.
"""

from __future__ import annotations

from jitadmin.core import texts
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant
from jitadmin.ports import TAMPERING_STEP, UnitOfWork
from jitadmin.services.context import ServiceContext, log

EVENT = f"account.{TAMPERING_STEP}"


def already_noted(uow: UnitOfWork, grant: Grant) -> bool:
    tag = texts.marker(grant.id, "tampered")
    return any(m.marker == tag for m in uow.outbox.for_grant(grant.id))


def note_tampering(ctx: ServiceContext, uow: UnitOfWork, grant: Grant, fields: str) -> bool:
    """Queue the ticket note in ``uow`` unless the grant has one; True when queued (the caller
    counts the metric after its commit)."""
    if already_noted(uow, grant):
        return False
    now = ctx.clock.now()
    tag = texts.marker(grant.id, "tampered")
    uow.outbox.enqueue(grant, tag, texts.tampering_note(grant, fields), now)
    log.warning("grant %s: its account was tampered with (%s)", grant.id, fields)
    return True


def tampering_seen(ctx: ServiceContext, grant_id: str, actor: str, fields: str) -> None:
    """Report tampering found outside a revocation (the drift pass): once per grant."""
    with ctx.uow() as uow:
        grant = uow.grants.get(grant_id, lock=True)
        if grant is None or already_noted(uow, grant):
            return
        uow.audit.append(
            AuditEvent(
                kind=EVENT, actor=actor, at=ctx.clock.now(), grant_id=grant.id,
                customer=grant.customer, data={"tampered_fields": fields},
            )
        )  # fmt: skip
        note_tampering(ctx, uow, grant, fields)
        uow.commit()
    ctx.metrics.tampering(grant.identity_provider)
    ctx.wake()
