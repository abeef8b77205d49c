"""The approvals page: the pending requests an approver (or admin) may decide on, each with
its approve and reject forms. The services decide who may; this only shows and posts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from jitadmin.core.errors import ValidationFailedError
from jitadmin.core.grant import GrantState
from jitadmin.entrypoints.web.auth import Ctx, Form, FormVisitor, PageVisitor, Visitor, text
from jitadmin.entrypoints.web.grant_pages import DECISION_NOTICES, grant_page
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import approvals
from jitadmin.services.context import ServiceContext

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


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
    return approvals_page(ctx, visitor, notice=DECISION_NOTICES.get(done, ""))


def _refused(
    ctx: ServiceContext,
    visitor: Visitor,
    grant_id: str,
    form: FormData,
    error: ValidationFailedError,
) -> Response:
    """Shown where the decision was made: the Approvals page, or the grant's own page."""
    found: dict[str, list[str]] = {}
    for problem in error.problems:
        found.setdefault(problem.field, []).append(problem.rule)
    comment = text(form, "comment")
    if text(form, "back") == "grant":
        return grant_page(
            ctx, visitor, grant_id, status=error.status, decision_errors=found,
            values={"comment": comment},
        )  # fmt: skip
    return approvals_page(
        ctx, visitor, status=error.status, errors={grant_id: found}, comments={grant_id: comment}
    )


@router.post("/grants/{grant_id}/approve")
def approve(ctx: Ctx, visitor: FormVisitor, form: Form, grant_id: str) -> Response:
    comment = text(form, "comment")
    try:
        grant = approvals.approve(ctx, visitor.user, grant_id, comment or None)
    except ValidationFailedError as error:
        return _refused(ctx, visitor, grant_id, form, error)
    done = "recorded" if grant.state is GrantState.PENDING_APPROVAL else "approved"
    return RedirectResponse(_decided(form, grant_id, done), status_code=303)


@router.post("/grants/{grant_id}/reject")
def reject(ctx: Ctx, visitor: FormVisitor, form: Form, grant_id: str) -> Response:
    comment = text(form, "comment")
    try:
        approvals.reject(ctx, visitor.user, grant_id, comment)
    except ValidationFailedError as error:
        return _refused(ctx, visitor, grant_id, form, error)
    return RedirectResponse(_decided(form, grant_id, "rejected"), status_code=303)


def _decided(form: FormData, grant_id: str, done: str) -> str:
    page_of = f"/grants/{grant_id}" if text(form, "back") == "grant" else "/approvals"
    return f"{page_of}?done={done}"
