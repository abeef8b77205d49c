"""Small JSON endpoints for the console's own script (session cookie, CSRF header on POST).

Errors are the API's problem+json (same handlers), so the script shows ``detail`` as is.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from jitadmin.core.clock import iso
from jitadmin.core.grant import REVOCABLE
from jitadmin.core.passwords import generate_password
from jitadmin.entrypoints.api.schemas import ExtendIn
from jitadmin.entrypoints.web.auth import Ctx, JsonVisitor, PollVisitor
from jitadmin.entrypoints.web.grant_pages import may_change
from jitadmin.entrypoints.web.render import FINAL_STATES, STATE_LABELS, role_text, when
from jitadmin.entrypoints.web.routing import JsonRoute
from jitadmin.services import admin, console, grants

router = APIRouter(route_class=JsonRoute, include_in_schema=False, prefix="/web/api")


@router.get("/customers/{slug}/tickets")
def tickets(slug: str, ctx: Ctx, visitor: PollVisitor) -> dict[str, Any]:
    return {
        "items": [
            {"id": t.id, "number": t.number, "summary": t.summary, "status": t.status}
            for t in admin.list_tickets(ctx, visitor.user, slug)
        ]
    }


@router.post("/password")
def new_password(visitor: JsonVisitor) -> dict[str, str]:
    # Nothing is stored: the password only becomes real when the form is submitted with it.
    return {"password": generate_password()}


def status_out(status: console.GrantStatus, changeable: bool) -> dict[str, Any]:
    grant = status.grant
    state = grant.state.value
    return {
        "id": grant.id,
        "state": state,
        "label": STATE_LABELS.get(state, state),
        "final": state in FINAL_STATES,
        "username": grant.username,
        "expires_at": iso(grant.expires_at),
        "expires_at_text": when(grant.expires_at),
        "activated_at": iso(grant.activated_at),
        "revoked_at": iso(grant.revoked_at),
        "last_error": grant.shown_error,
        "failure": status.failure,
        "may_revoke": changeable and grant.state in REVOCABLE,
        "may_extend": changeable and state == "active",
        "may_cancel": changeable and state == "pending_approval",
        "credential": grant.account.get("credential") or "password",
        "credential_notice": grant.account.get("credential_notice"),
        "role_text": role_text(grant.account),
    }


@router.get("/grants/{grant_id}/status")
def grant_status(grant_id: str, ctx: Ctx, visitor: PollVisitor) -> dict[str, Any]:
    status = console.grant_status(ctx, visitor.user, grant_id)
    return status_out(status, may_change(visitor, status.grant.requester))


@router.get("/grants/{grant_id}/ticket")
def grant_ticket(grant_id: str, ctx: Ctx, visitor: PollVisitor) -> dict[str, Any]:
    ticket = console.grant_ticket(ctx, visitor.user, grant_id)
    return {
        "id": ticket.id,
        "number": ticket.number,
        "summary": ticket.summary,
        "status": ticket.status,
        "closed": ticket.is_closed,
    }


@router.post("/grants/{grant_id}/revoke")
def revoke(grant_id: str, ctx: Ctx, visitor: JsonVisitor) -> dict[str, Any]:
    grants.revoke_now(ctx, visitor.user, grant_id)
    status = console.grant_status(ctx, visitor.user, grant_id)
    return status_out(status, may_change(visitor, status.grant.requester))


@router.post("/grants/{grant_id}/extend")
def extend(grant_id: str, body: ExtendIn, ctx: Ctx, visitor: JsonVisitor) -> dict[str, Any]:
    grants.extend_grant(ctx, visitor.user, grant_id, body.minutes)
    status = console.grant_status(ctx, visitor.user, grant_id)
    return status_out(status, may_change(visitor, status.grant.requester))
