"""Delivering ticket notes from the outbox: never lost, never doubled."""

from __future__ import annotations

from datetime import timedelta

from jitadmin.core.errors import AdapterError, TransientError
from jitadmin.core.retry import MAX_RETRY_AFTER_S
from jitadmin.services.backoff import honoured_retry_after, next_attempt
from jitadmin.services.context import ServiceContext, log

PSA = "psa"


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
        with ctx.uow() as uow:
            retry_after = honoured_retry_after(
                ctx, uow, error, limit_s=MAX_RETRY_AFTER_S, work="note", connector=PSA,
                grant_id=message.grant_id, customer=message.customer,
            )  # fmt: skip
            until = next_attempt(ctx, message.attempts, retry_after, MAX_RETRY_AFTER_S)
            uow.outbox.mark_retry(message_id, str(error)[:1000], until)
            uow.commit()
        log.warning(
            "note %s for grant %s not delivered yet: %s", message.marker, message.grant_id, error
        )
        return False
    with ctx.uow() as uow:
        uow.outbox.mark_sent(message_id, note_id, ctx.clock.now())
        uow.commit()
    return True


def record_unexpected_note_failure(ctx: ServiceContext, message_id: int, error: Exception) -> bool:
    """After ``deliver_note`` itself raised: back the message off like any failed delivery
    (its claim counted the attempt). False when not even that could be written; the caller
    then leaves its lease to lapse."""
    try:
        with ctx.uow() as uow:
            message = uow.outbox.get(message_id)
            if message is not None and message.state != "sent":
                until = next_attempt(ctx, message.attempts, None, MAX_RETRY_AFTER_S)
                reason = f"unexpected error: {type(error).__name__}"
                uow.outbox.mark_retry(message_id, reason, until)
                uow.commit()
        return True
    except Exception:  # noqa: BLE001 - the database itself is failing
        log.exception("note %s: could not defer it; its lease brings it back", message_id)
        return False
