"""REST API v1: notification channels (admin). URLs and secrets are write-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from jitadmin.core.clock import iso
from jitadmin.entrypoints.api import responses as out
from jitadmin.entrypoints.api.responses import problem_responses
from jitadmin.entrypoints.api.routes import Actor, Ctx
from jitadmin.entrypoints.api.schemas import ChannelIn
from jitadmin.services import notifications

router = APIRouter(
    prefix="/api/v1/notification-channels", responses=problem_responses(401, 403, 422)
)


def channel_out(view: notifications.ChannelView) -> dict[str, Any]:
    c = view.channel
    return {
        "id": c.id, "kind": c.kind, "host": c.host, "to": list(c.recipients),
        "events": list(c.events),
        "customers": None if c.customers is None else list(c.customers),
        "created_at": iso(c.created_at), "created_by": c.created_by, "failing": view.failing,
        "consecutive_failures": c.consecutive_failures, "last_error": c.last_error,
        "last_attempt_at": iso(c.last_attempt_at), "last_success_at": iso(c.last_success_at),
        "backlog": view.backlog,
    }  # fmt: skip


@router.post("", status_code=201, response_model=out.ChannelOut)
def create_channel(body: ChannelIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    given = notifications.ChannelIn(
        kind=body.kind, url=body.url, to=tuple(body.to or ()), secret=body.secret,
        events=tuple(body.events),
        customers=None if body.customers is None else tuple(body.customers),
    )  # fmt: skip
    return channel_out(notifications.create_channel(ctx, actor, given))


@router.get("", response_model=out.ChannelList)
def list_channels(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {"items": [channel_out(v) for v in notifications.list_channels(ctx, actor)]}


@router.delete("/{channel_id}", response_model=out.ChannelDeleted, responses=problem_responses(404))
def delete_channel(channel_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    notifications.delete_channel(ctx, actor, channel_id)
    return {"id": channel_id, "deleted": True}


@router.post(
    "/{channel_id}/test", response_model=out.ChannelTested, responses=problem_responses(404)
)
def test_channel(channel_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    result = notifications.test_channel(ctx, actor, channel_id)
    return {"ok": result.ok, "message": result.message}
