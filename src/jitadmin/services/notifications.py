"""Notification channels (admin): create, list with their health, delete, test; and
``notify``, which puts an event's deliveries in the same transaction as the state change.

A channel's URL and signing secret are sealed together (an incoming-webhook URL of Slack or
Teams is itself a credential); only the host is ever shown. URLs obey the egress policy, as
connection settings do, and the sender checks again on every connection.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from jitadmin.core import fields
from jitadmin.core import notifications as n
from jitadmin.core.errors import (
    AdapterError,
    FieldProblem,
    NotFoundError,
    ValidationFailedError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant
from jitadmin.ports import NotificationChannel, UnitOfWork, User
from jitadmin.services.connection_checks import outcome_of, url_rule
from jitadmin.services.context import ServiceContext, require_unrestricted_admin

WHAT = "notification channels (they may carry every customer's events)"
MIN_SECRET = 16
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


@dataclass(frozen=True)
class ChannelIn:
    kind: str
    url: str | None = None
    to: tuple[str, ...] = ()
    secret: str | None = None
    events: tuple[str, ...] = ()
    customers: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ChannelView:
    channel: NotificationChannel
    backlog: int

    @property
    def failing(self) -> bool:
        return self.channel.consecutive_failures >= n.FAILING_AFTER


@dataclass(frozen=True)
class TestOutcome:
    ok: bool
    message: str


def context_of(channel_id: str, kind: str) -> str:
    return f"notification-channel:{channel_id}:{kind}"


def _problems(ctx: ServiceContext, uow: UnitOfWork, given: ChannelIn) -> list[FieldProblem]:
    if given.kind not in n.KINDS:
        return [FieldProblem("kind", f"must be one of {', '.join(n.KINDS)}")]
    found = _target_problems(ctx, given) + _secret_problems(given)
    if not given.events:
        found.append(FieldProblem("events", f"must name at least one of {', '.join(n.EVENTS)}"))
    found.extend(
        FieldProblem("events", f"{event!r} is not one of {', '.join(n.EVENTS)}")
        for event in given.events
        if event not in n.EVENTS
    )
    found.extend(
        FieldProblem("customers", f"no customer {slug!r}")
        for slug in given.customers or ()
        if uow.customers.get(slug) is None
    )
    return found


def _target_problems(ctx: ServiceContext, given: ChannelIn) -> list[FieldProblem]:
    """Where it goes: a URL the egress policy allows, or email addresses."""
    if given.kind not in n.URL_KINDS:
        found = (
            [FieldProblem("url", "is not used by email channels (give to)")] if given.url else []
        )
        if not given.to:
            found.append(FieldProblem("to", "is required for an email channel"))
        found.extend(
            FieldProblem("to", f"{address!r} is not an email address")
            for address in given.to
            if not _EMAIL.match(address)
        )
        return found
    found = [FieldProblem("to", "is only for email channels")] if given.to else []
    if not given.url:
        found.append(FieldProblem("url", f"is required for a {given.kind} channel"))
    elif (rule := url_rule(ctx, given.url)) is not None:
        found.append(FieldProblem("url", rule))
    return found


def _secret_problems(given: ChannelIn) -> list[FieldProblem]:
    if given.kind != "webhook":
        return (
            [FieldProblem("secret", "only webhook channels sign their deliveries")]
            if given.secret
            else []
        )
    if not given.secret or len(given.secret.strip()) < MIN_SECRET:
        return [FieldProblem("secret", f"must be at least {MIN_SECRET} characters (it signs)")]
    return []


def create_channel(ctx: ServiceContext, actor: User, given: ChannelIn) -> ChannelView:
    require_unrestricted_admin(actor, WHAT)
    fields.check(
        {"kind": given.kind, "url": given.url, "to": list(given.to), "secret": given.secret,
         "events": list(given.events), "customers": list(given.customers or ())},
        {"kind": fields.Limit(16), "to": fields.Limit(320), "events": fields.Limit(40)},
    )  # fmt: skip
    now = ctx.clock.now()
    with ctx.uow() as uow:
        found = _problems(ctx, uow, given)
        if found:
            raise ValidationFailedError(found)
        channel_id = str(uuid.uuid4())
        secrets = {"url": given.url, "secret": given.secret}
        channel = NotificationChannel(
            id=channel_id, kind=given.kind,
            host=(urlsplit(given.url).hostname or "") if given.url else "",
            recipients=given.to, events=tuple(dict.fromkeys(given.events)),
            customers=None if given.customers is None else tuple(dict.fromkeys(given.customers)),
            sealed=ctx.box.seal(json.dumps(secrets), context_of(channel_id, given.kind)),
            created_at=now, created_by=actor.username,
        )  # fmt: skip
        uow.notifications.add_channel(channel)
        uow.audit.append(_audit(actor, now, "notification_channel.created", channel))
        uow.commit()
    return ChannelView(channel, 0)


def list_channels(ctx: ServiceContext, actor: User) -> list[ChannelView]:
    require_unrestricted_admin(actor, WHAT)
    with ctx.uow() as uow:
        backlog = uow.notifications.backlog()
        return [ChannelView(c, backlog.get(c.id, 0)) for c in uow.notifications.channels()]


def delete_channel(ctx: ServiceContext, actor: User, channel_id: str) -> None:
    require_unrestricted_admin(actor, WHAT)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        channel = _channel(uow, channel_id)
        uow.notifications.delete_channel(channel_id)
        uow.audit.append(_audit(actor, now, "notification_channel.deleted", channel))
        uow.commit()


def test_channel(ctx: ServiceContext, actor: User, channel_id: str) -> TestOutcome:
    """Send a ``channel.test`` notification now; its outcome in fixed words, audited."""
    require_unrestricted_admin(actor, WHAT)
    with ctx.uow() as uow:
        channel = _channel(uow, channel_id)
    now = ctx.clock.now()
    body = n.payload(n.TEST_EVENT, now, None, ctx.public_url)
    try:
        send(ctx, channel, body, str(uuid.uuid4()))
        result = TestOutcome(True, "delivered")
    except AdapterError as error:
        _, message = outcome_of(error)
        result = TestOutcome(False, message)
    with ctx.uow() as uow:
        uow.notifications.record_attempt(channel.id, now, None if result.ok else result.message)
        event = _audit(actor, now, "notification_channel.tested", channel, outcome=result.message)
        uow.audit.append(event)
        uow.commit()
    return result


def send(
    ctx: ServiceContext, channel: NotificationChannel, body: dict[str, Any], delivery_id: str
) -> None:
    """One delivery to one channel, now; an ``AdapterError`` when it did not arrive."""
    opened = json.loads(ctx.box.open(channel.sealed, context_of(channel.id, channel.kind)))
    if channel.kind == "email":
        ctx.mailer.send(channel.recipients, n.summary(body), _email_text(body))
        return
    raw, headers = n.render(channel.kind, body, delivery_id, opened.get("secret"))
    ctx.notifier.post(str(opened["url"]), raw, headers)


def _email_text(body: dict[str, Any]) -> str:
    lines = [n.summary(body), ""]
    if body.get("url"):
        lines.append(str(body["url"]))
    lines.append(json.dumps(body.get("grant"), indent=2, sort_keys=True))
    return "\n".join(lines)


def notify(
    ctx: ServiceContext,
    uow: UnitOfWork,
    event: str,
    grant: Grant | None,
    at: datetime,
    *,
    customer: str | None = None,
    **details: Any,
) -> None:
    """Queue ``event`` for every channel that asked for it, in ``uow``'s transaction: it is
    delivered exactly when the change it reports is committed."""
    slug = grant.customer if grant is not None else customer
    url = n.grant_link(ctx.public_url, grant.id) if grant is not None else ctx.public_url
    for channel in uow.notifications.channels():
        if event not in channel.events:
            continue
        if channel.customers is not None and slug not in channel.customers:
            continue
        body = n.payload(event, at, grant, url, **details)
        uow.notifications.enqueue(channel.id, str(uuid.uuid4()), event, body, at)


def _channel(uow: UnitOfWork, channel_id: str) -> NotificationChannel:
    channel = uow.notifications.channel(channel_id) if len(channel_id) <= 36 else None
    if channel is None:
        raise NotFoundError("notification channel", channel_id[:36])
    return channel


def _audit(
    actor: User, at: datetime, kind: str, channel: NotificationChannel, **data: Any
) -> AuditEvent:
    return AuditEvent(
        kind=kind, actor=actor.username, at=at,
        data={"channel": channel.id, "kind": channel.kind, "host": channel.host,
              "to": list(channel.recipients), "events": list(channel.events),
              "customers": None if channel.customers is None else list(channel.customers),
              **data},
    )  # fmt: skip
