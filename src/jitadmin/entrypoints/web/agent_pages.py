"""The console's on-prem agent forms (Customers and connections): a one-time enrollment code,
shown once, and revoking an agent. The page lists each customer's agents with their state."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from jitadmin.core.clock import iso
from jitadmin.entrypoints.web.admin_pages import customers_page
from jitadmin.entrypoints.web.auth import Ctx, FormVisitor
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import agents

router = APIRouter(route_class=HtmlRoute, include_in_schema=False, prefix="/admin")


@router.post("/customers/{slug}/agents/enrollments")
def create_enrollment(ctx: Ctx, visitor: FormVisitor, slug: str) -> Response:
    code = agents.create_enrollment(ctx, visitor.user, slug)
    shown = {"slug": slug, "code": code.code, "expires_at": iso(code.expires_at)}
    return customers_page(ctx, visitor, enrollment=shown)


@router.post("/agents/{agent_id}/revoke")
def revoke_agent(ctx: Ctx, visitor: FormVisitor, agent_id: str) -> Response:
    agent = agents.revoke_agent(ctx, visitor.user, agent_id)
    return customers_page(ctx, visitor, notice=f"Agent {agent.name} of {agent.customer} revoked.")
