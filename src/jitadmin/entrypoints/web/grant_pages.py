"""Grant lists and a grant's page: timeline, ticket, end now, extend, admin reveal."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from jitadmin.core.errors import ConflictError, ValidationFailedError
from jitadmin.core.grant import GrantState
from jitadmin.entrypoints.web.auth import Ctx, Form, FormVisitor, PageVisitor, Visitor, text
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import admin, approvals, console, grants, reveals
from jitadmin.services.context import ADMIN, ServiceContext, require_role

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

DECISION_NOTICES = {
    "approved": "Approved: the access is being granted, and the ticket will name the approvers.",
    "recorded": "Your approval is recorded; the request still needs another approver.",
    "rejected": "Rejected: nothing was created, and the ticket will get a note.",
}

NOTICES = {
    "revoke": "Access is being taken away. The state below follows the worker.",
    "extended": "The grant was extended and the ticket will get a note.",
    "cancelled": "The request was cancelled; nothing was created.",
    **DECISION_NOTICES,
}


def may_change(visitor: Visitor, requester: str) -> bool:
    """Whether to offer End/Extend; the services decide for real when the button is used."""
    return visitor.user.role == "admin" or (
        visitor.user.role != "auditor" and requester == visitor.user.username
    )


@router.get("/grants")
def grant_list(
    ctx: Ctx, visitor: PageVisitor, state: str = "", customer: str = "", requester: str = ""
) -> Response:
    errors: dict[str, list[str]] = {}
    try:
        items = grants.list_grants(
            ctx, visitor.user, state=state or None, customer=customer or None
        )
    except ValidationFailedError as error:
        items = []
        errors = {p.field: [p.rule] for p in error.problems}
    if requester and visitor.sees_all:
        items = [g for g in items if requester.strip().lower() in g.requester.lower()]
    return page(
        "grants.html",
        title="All grants" if visitor.sees_all else "My grants",
        visitor=visitor,
        items=items,
        states=[s.value for s in GrantState],
        customers=[c for c, _ in admin.list_customers(ctx, visitor.user)],
        filters={"state": state, "customer": customer, "requester": requester},
        errors=errors,
    )


def grant_page(
    ctx: ServiceContext,
    visitor: Visitor,
    grant_id: str,
    *,
    status: int = 200,
    notice: str = "",
    errors: dict[str, list[str]] | None = None,
    values: dict[str, str] | None = None,
    revealed: str | None = None,
    tap_shown: str | None = None,
    tap_error: str | None = None,
    decision_errors: dict[str, list[str]] | None = None,
) -> Response:
    detail = console.grant_detail(ctx, visitor.user, grant_id)
    return page(
        "grant.html",
        status,
        title=f"Grant {detail.grant.username or detail.grant.id}",
        visitor=visitor,
        grant=detail.grant,
        events=detail.events,
        notes=detail.notes,
        failure=detail.failure,
        may_change=may_change(visitor, detail.grant.requester),
        notice=notice,
        errors=errors or {},
        values=values or {},
        revealed=revealed,
        credential=grants.credential_of(detail.grant),
        tap_shown=tap_shown,
        tap_error=tap_error,
        decision_errors=decision_errors or {},
    )


@router.get("/grants/{grant_id}")
def grant_view(ctx: Ctx, visitor: PageVisitor, grant_id: str, done: str = "") -> Response:
    return grant_page(ctx, visitor, grant_id, notice=NOTICES.get(done, ""))


@router.post("/grants/{grant_id}/revoke")
def revoke(ctx: Ctx, visitor: FormVisitor, grant_id: str) -> Response:
    grants.revoke_now(ctx, visitor.user, grant_id)
    return RedirectResponse(f"/grants/{grant_id}?done=revoke", status_code=303)


@router.post("/grants/{grant_id}/cancel")
def cancel(ctx: Ctx, visitor: FormVisitor, grant_id: str) -> Response:
    approvals.cancel(ctx, visitor.user, grant_id)
    return RedirectResponse(f"/grants/{grant_id}?done=cancelled", status_code=303)


def parse_minutes(raw: str, field: str = "minutes") -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValidationFailedError.single(field, "must be a whole number of minutes") from None


@router.post("/grants/{grant_id}/extend")
def extend(ctx: Ctx, visitor: FormVisitor, form: Form, grant_id: str) -> Response:
    raw = text(form, "minutes")
    try:
        grants.extend_grant(ctx, visitor.user, grant_id, parse_minutes(raw))
    except ValidationFailedError as error:
        found = {"minutes": [p.rule for p in error.problems]}
        return grant_page(
            ctx, visitor, grant_id, status=error.status, errors=found, values={"minutes": raw}
        )
    except ConflictError as error:
        return grant_page(
            ctx, visitor, grant_id, status=error.status, errors={"minutes": [str(error)]},
            values={"minutes": raw},
        )  # fmt: skip
    return RedirectResponse(f"/grants/{grant_id}?done=extended", status_code=303)


@router.post("/grants/{grant_id}/temporary-access-pass")
def show_temporary_access_pass(ctx: Ctx, visitor: FormVisitor, grant_id: str) -> Response:
    try:
        secret = reveals.show_temporary_access_pass(ctx, visitor.user, grant_id)
    except ConflictError as error:
        return grant_page(ctx, visitor, grant_id, status=error.status, tap_error=str(error))
    return grant_page(ctx, visitor, grant_id, tap_shown=secret)


@router.post("/grants/{grant_id}/reveal")
def reveal(ctx: Ctx, visitor: FormVisitor, form: Form, grant_id: str) -> Response:
    require_role(visitor.user, ADMIN)
    reason = text(form, "reveal_reason").strip()
    errors: dict[str, list[str]] = {}
    if not reason:
        errors["reveal_reason"] = ["say why you need the password; it goes into the audit log"]
    if text(form, "confirm") != "yes":
        errors["confirm"] = ["confirm that this reveal is recorded"]
    if errors:
        # Checked before the service so a careless click reveals nothing and audits nothing.
        return grant_page(
            ctx, visitor, grant_id, status=422, errors=errors,
            values={"reveal_reason": reason},
        )  # fmt: skip
    try:
        password = reveals.reveal_password(ctx, visitor.user, grant_id, reason)
    except ValidationFailedError as error:
        rules = [p.rule for p in error.problems if p.field == "reason"]
        if not rules:
            raise  # the grant id itself: the error page
        return grant_page(
            ctx, visitor, grant_id, status=422, errors={"reveal_reason": rules}, values={}
        )
    return grant_page(ctx, visitor, grant_id, revealed=password)
