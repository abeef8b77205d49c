"""Delivering ticket notes from the outbox: never lost, never doubled."""

from __future__ import annotations

from datetime import timedelta

from jitadmin.core.errors import AdapterError, TransientError
from jitadmin.services.context import ServiceContext, log


def deliver_note(ctx: ServiceContext, message_id: int) -> bool:
    """Post one claimed outbox message. True when it is (now or already) on the ticket."""
    with ctx.uow() as uow:
        message = uow.outbox.get(message_id)
        if message is None or message.state == "sent":
            return True
        # A grant's notes reach the ticket in the order they were written: after a PSA outage
        # the revoke note must not overtake the grant note still waiting before it.
        earlier = [
            m
            for m in uow.outbox.for_grant(message.grant_id)
            if m.id < message.id and m.state != "sent"
        ]
        if earlier:
            wait = timedelta(seconds=ctx.retry.delay(1))
            reason = f"waiting for the earlier note {earlier[0].marker}"
            uow.outbox.mark_retry(message_id, reason, ctx.clock.now() + wait)
            uow.commit()
            return False
        try:
            system = ctx.tickets(uow)
        except Exception as error:  # noqa: BLE001 - a missing PSA must not stop the loop
            system = None
            setup_error: Exception = error
    try:
        if system is None:
            raise TransientError(f"PSA unusable: {setup_error}")
        # The marker check makes a retry after an unknown outcome safe.
        note_id = system.find_note(message.ticket_id, message.marker)
        if note_id is None:
            note_id = system.add_note(message.ticket_id, message.text)
    except (AdapterError, Exception) as error:  # noqa: BLE001
        retry_after = getattr(error, "retry_after_s", None)
        with ctx.uow() as uow:
            delay = ctx.retry.delay(message.attempts, retry_after)
            uow.outbox.mark_retry(
                message_id, str(error)[:1000], ctx.clock.now() + timedelta(seconds=delay)
            )
            uow.commit()
        log.warning(
            "note %s for grant %s not delivered yet: %s", message.marker, message.grant_id, error
        )
        return False
    with ctx.uow() as uow:
        uow.outbox.mark_sent(message_id, note_id, ctx.clock.now())
        uow.commit()
    return True
