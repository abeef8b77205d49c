"""The console's notification channels page (unrestricted admins): list with health, create,
test, delete. URLs and secrets are write-only: the page shows only the host."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from jitadmin.core.errors import ValidationFailedError
from jitadmin.core.notifications import EVENTS, KINDS
from jitadmin.entrypoints.web.auth import Ctx, Form, FormVisitor, PageVisitor, Visitor, text
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import notifications
from jitadmin.services.context import ServiceContext

router = APIRouter(route_class=HtmlRoute, include_in_schema=False, prefix="/admin")


def _listed(value: str) -> tuple[str, ...]:
    return tuple(item for item in re.split(r"[\s,;]+", value.strip()) if item)


def channels_page(
    ctx: ServiceContext, visitor: Visitor, *, status: int = 200, **extra: Any
) -> Response:
    extra.setdefault("errors", {})
    extra.setdefault("values", {})
    extra.setdefault("notice", "")
    return page(
        "admin_notifications.html", status, title="Notification channels", visitor=visitor,
        channels=notifications.list_channels(ctx, visitor.user), kinds=KINDS, events=EVENTS,
        **extra,
    )  # fmt: skip


@router.get("/notifications")
def channels(ctx: Ctx, visitor: PageVisitor) -> Response:
    return channels_page(ctx, visitor)


@router.post("/notifications")
def create_channel(ctx: Ctx, visitor: FormVisitor, form: Form) -> Response:
    chosen = tuple(v for v in form.getlist("events") if isinstance(v, str))
    customers = _listed(text(form, "customers"))
    given = notifications.ChannelIn(
        kind=text(form, "kind"), url=text(form, "url").strip() or None,
        to=_listed(text(form, "to")), secret=text(form, "secret") or None, events=chosen,
        customers=customers or None,
    )  # fmt: skip
    values = {"kind": given.kind, "to": text(form, "to"), "customers": text(form, "customers"),
              "events": chosen}  # fmt: skip
    try:
        made = notifications.create_channel(ctx, visitor.user, given)
    except ValidationFailedError as error:
        found: dict[str, list[str]] = {}
        for problem in error.problems:
            found.setdefault(problem.field, []).append(problem.rule)
        return channels_page(ctx, visitor, status=error.status, errors=found, values=values)
    return channels_page(ctx, visitor, notice=f"Channel {made.channel.id} created.")


@router.post("/notifications/{channel_id}/test")
def test_channel(ctx: Ctx, visitor: FormVisitor, channel_id: str) -> Response:
    result = notifications.test_channel(ctx, visitor.user, channel_id)
    outcome = "Test notification delivered." if result.ok else f"Test failed: {result.message}."
    return channels_page(ctx, visitor, notice=outcome)


@router.post("/notifications/{channel_id}/delete")
def delete_channel(ctx: Ctx, visitor: FormVisitor, channel_id: str) -> Response:
    notifications.delete_channel(ctx, visitor.user, channel_id)
    return channels_page(ctx, visitor, notice=f"Channel {channel_id} deleted.")
