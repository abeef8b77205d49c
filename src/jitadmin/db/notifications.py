"""Notification channels and their deliveries: an outbox of its own, claimed with a lease like
ticket notes, so a channel that keeps failing never delays notes or revocations."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from jitadmin.db.claims import skip_locked, unclaimed
from jitadmin.db.tables import NotificationChannelRow, NotificationDeliveryRow, UtcDateTime
from jitadmin.ports import NotificationChannel, NotificationDelivery

_D = NotificationDeliveryRow
_CHANNELS = select(*NotificationChannelRow.__table__.c).order_by(
    NotificationChannelRow.created_at, NotificationChannelRow.id
)


class SqlNotificationRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    @staticmethod
    def _channel(row: NotificationChannelRow) -> NotificationChannel:
        return NotificationChannel(
            id=row.id, kind=row.kind, host=row.host, recipients=tuple(row.recipients),
            events=tuple(row.events),
            customers=None if row.customers is None else tuple(row.customers),
            sealed=row.sealed, created_at=row.created_at, created_by=row.created_by,
            consecutive_failures=row.consecutive_failures, last_error=row.last_error,
            last_attempt_at=row.last_attempt_at, last_success_at=row.last_success_at,
        )  # fmt: skip

    @staticmethod
    def _delivery(row: NotificationDeliveryRow) -> NotificationDelivery:
        return NotificationDelivery(
            row.id, row.delivery_id, row.channel_id, row.event, dict(row.payload), row.state,
            row.attempts, row.last_error, row.next_attempt_at,
        )  # fmt: skip

    # -- channels -------------------------------------------------------------------------

    def add_channel(self, channel: NotificationChannel) -> None:
        self.s.add(
            NotificationChannelRow(
                id=channel.id, kind=channel.kind, host=channel.host,
                recipients=list(channel.recipients), events=list(channel.events),
                customers=None if channel.customers is None else list(channel.customers),
                sealed=channel.sealed, created_at=channel.created_at,
                created_by=channel.created_by, consecutive_failures=0,
            )
        )  # fmt: skip
        self.s.flush()

    def channel(self, channel_id: str) -> NotificationChannel | None:
        row = self.s.get(NotificationChannelRow, channel_id)
        return None if row is None else self._channel(row)

    def channels(self) -> list[NotificationChannel]:
        # Core, prebuilt: every state change a channel may want asks for the list.
        rows = self.s.connection().execute(_CHANNELS)
        return [self._channel(cast(NotificationChannelRow, r)) for r in rows]

    def delete_channel(self, channel_id: str) -> bool:
        self.s.execute(delete(_D).where(_D.channel_id == channel_id, _D.state == "pending"))
        result = self.s.execute(
            delete(NotificationChannelRow).where(NotificationChannelRow.id == channel_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def backlog(self) -> dict[str, int]:
        rows = self.s.execute(
            select(_D.channel_id, func.count()).where(_D.state == "pending").group_by(_D.channel_id)
        )
        return {channel_id: int(count) for channel_id, count in rows}

    def record_attempt(self, channel_id: str, at: datetime, error: str | None) -> None:
        row = NotificationChannelRow
        values: dict[str, Any] = {"last_attempt_at": at}
        if error is None:
            values.update(consecutive_failures=0, last_error=None, last_success_at=at)
        else:
            values.update(consecutive_failures=row.consecutive_failures + 1, last_error=error)
        self.s.execute(update(row).where(row.id == channel_id).values(**values))

    # -- deliveries -----------------------------------------------------------------------

    def enqueue(
        self, channel_id: str, delivery_id: str, event: str, payload: dict[str, Any], at: datetime
    ) -> None:
        self.s.add(
            _D(
                delivery_id=delivery_id, channel_id=channel_id, event=event, payload=payload,
                state="pending", attempts=0, next_attempt_at=at, created_at=at,
            )
        )  # fmt: skip
        self.s.flush()

    def get(self, delivery_pk: int) -> NotificationDelivery | None:
        row = self.s.get(_D, delivery_pk)
        return None if row is None else self._delivery(row)

    def for_channel(self, channel_id: str) -> list[NotificationDelivery]:
        rows = self.s.scalars(select(_D).where(_D.channel_id == channel_id).order_by(_D.id))
        return [self._delivery(r) for r in rows]

    def _due(self, now: datetime) -> Any:
        return (
            (_D.state == "pending")
            & (_D.next_attempt_at <= now)
            & unclaimed(_D.claim_expires_at, now)
        )

    def due(self, now: datetime, limit: int) -> list[int]:
        query = select(_D.id).where(self._due(now)).order_by(_D.next_attempt_at, _D.id).limit(limit)
        return list(self.s.scalars(skip_locked(self.s, query, _D)))

    def claim(self, delivery_pk: int, worker: str, now: datetime, lease_until: datetime) -> bool:
        result = self.s.execute(
            update(_D)
            .where(_D.id == delivery_pk, self._due(now))
            .values(claimed_by=worker, claim_expires_at=lease_until, attempts=_D.attempts + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self, delivery_pk: int, worker: str) -> None:
        self.s.execute(
            update(_D)
            .where(_D.id == delivery_pk, _D.claimed_by == worker)
            .values(claimed_by=None, claim_expires_at=None)
        )

    def mark_sent(self, delivery_pk: int, at: datetime) -> None:
        self.s.execute(
            update(_D)
            .where(_D.id == delivery_pk)
            .values(state="sent", sent_at=at, claimed_by=None, claim_expires_at=None,
                    last_error=None, next_attempt_at=None)
        )  # fmt: skip

    def mark_retry(self, delivery_pk: int, error: str, next_attempt_at: datetime) -> None:
        self.s.execute(
            update(_D)
            .where(_D.id == delivery_pk)
            .values(last_error=error, next_attempt_at=next_attempt_at, claimed_by=None,
                    claim_expires_at=None)
        )  # fmt: skip

    def next_deadline(self, now: datetime) -> datetime | None:
        due = self.s.scalar(
            select(func.min(_D.next_attempt_at, type_=UtcDateTime)).where(
                _D.state == "pending", unclaimed(_D.claim_expires_at, now)
            )
        )
        lease = self.s.scalar(
            select(func.min(_D.claim_expires_at, type_=UtcDateTime)).where(
                _D.state == "pending", _D.claim_expires_at >= now
            )
        )
        return min((c for c in (due, lease) if c is not None), default=None)
