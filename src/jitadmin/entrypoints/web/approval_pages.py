"""The approvals page: the pending requests an approver (or admin) may decide on, each with
its approve and reject forms. The services decide who may; this only shows and posts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from jitadmin.core.errors import ValidationFailedError
from jitadmin.core.grant import GrantState
from jitadmin.entrypoints.web.auth import Ctx, Form, FormVisitor, PageVisitor, Visitor, text
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import approvals
from jitadmin.services.context import ServiceContext

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

NOTICES = {
    "approved": "Approved: the access is being granted, and the ticket will name the approvers.",
    "recorded": "Your approval is recorded; the request still needs another approver.",
    "rejected": "Rejected: nothing was created, and the ticket will get a note.",
}


def approvals_page(
    ctx: ServiceContext,
    visitor: Visitor,
    *,
    status: int = 200,
    notice: str = "",
    errors: dict[str, dict[str, list[str]]] | None = None,
    comments: dict[str, str] | None = None,
) -> Response:
    """``errors`` and ``comments`` are per grant id: the row whose form was refused."""
    items = approvals.pending(ctx, visitor.user)
    now = ctx.clock.now()
    rows = [(g, max(int((now - g.created_at).total_seconds() // 60), 0)) for g in items]
    return page(
        "approvals.html",
        status,
        title="Approvals",
        visitor=visitor,
        rows=rows,
        notice=notice,
        errors=errors or {},
        comments=comments or {},
    )


@router.get("/approvals")
def approvals_view(ctx: Ctx, visitor: PageVisitor, done: str = "") -> Response:
    return approvals_page(ctx, visitor, notice=NOTICES.get(done, ""))


def _refused(
    ctx: ServiceContext, visitor: Visitor, grant_id: str, comment: str, error: ValidationFailedError
) -> Response:
    found: dict[str, list[str]] = {}
    for problem in error.problems:
        found.setdefault(problem.field, []).append(problem.rule)
    return approvals_page(
        ctx, visitor, status=error.status, errors={grant_id: found}, comments={grant_id: comment}
    )


@router.post("/grants/{grant_id}/approve")
def approve(ctx: Ctx, visitor: FormVisitor, form: Form, grant_id: str) -> Response:
    comment = text(form, "comment")
    try:
        grant = approvals.approve(ctx, visitor.user, grant_id, comment or None)
    except ValidationFailedError as error:
        return _refused(ctx, visitor, grant_id, comment, error)
    done = "recorded" if grant.state is GrantState.PENDING_APPROVAL else "approved"
    return RedirectResponse(f"/approvals?done={done}", status_code=303)


@router.post("/grants/{grant_id}/reject")
def reject(ctx: Ctx, visitor: FormVisitor, form: Form, grant_id: str) -> Response:
    comment = text(form, "comment")
    try:
        approvals.reject(ctx, visitor.user, grant_id, comment)
    except ValidationFailedError as error:
        return _refused(ctx, visitor, grant_id, comment, error)
    return RedirectResponse("/approvals?done=rejected", status_code=303)
