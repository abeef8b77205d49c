"""Delivering queued notifications: at least once per channel, the same ``X-Jitadmin-Delivery``
on every retry (the receiver's dedup key), backed off while a channel fails, forever.

A channel's health is written beside each attempt: a success resets its failure count, each
failure adds one and keeps the last error (our own words, never the receiver's body).
"""

from __future__ import annotations

from jitadmin.core.errors import AdapterError
from jitadmin.core.retry import MAX_RETRY_AFTER_S
from jitadmin.services.backoff import asked_retry_after, next_attempt
from jitadmin.services.context import ServiceContext, log
from jitadmin.services.notifications import send


def _reason(error: Exception) -> str:
    if isinstance(error, AdapterError):
        return str(error)[:500]
    return f"unexpected error: {type(error).__name__}"


def deliver_notification(ctx: ServiceContext, delivery_pk: int) -> bool:
    """Send one claimed delivery. True when it arrived (or needs sending no more)."""
    with ctx.uow() as uow:
        delivery = uow.notifications.get(delivery_pk)
        if delivery is None or delivery.state == "sent":
            return True  # delivered meanwhile, or its channel was deleted
        channel = uow.notifications.channel(delivery.channel_id)
    if channel is None:
        return True
    try:
        send(ctx, channel, delivery.payload, delivery.delivery_id)
    except Exception as error:  # noqa: BLE001 - any failure is retried later, never lost
        reason = _reason(error)
        asked = asked_retry_after(error)
        limit = float(MAX_RETRY_AFTER_S)
        retry_after = None if asked is None else min(asked, limit)
        with ctx.uow() as uow:
            now = ctx.clock.now()
            uow.notifications.record_attempt(channel.id, now, reason)
            until = next_attempt(ctx, delivery.attempts, retry_after, limit)
            uow.notifications.mark_retry(delivery_pk, reason, until)
            uow.commit()
        log.warning(
            "notification %s (%s) to channel %s not delivered yet: %s",
            delivery.delivery_id, delivery.event, channel.id, reason,
        )  # fmt: skip
        return False
    with ctx.uow() as uow:
        now = ctx.clock.now()
        uow.notifications.mark_sent(delivery_pk, now)
        uow.notifications.record_attempt(channel.id, now, None)
        uow.commit()
    return True
