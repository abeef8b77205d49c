"""Admin pages for one user: change role and customers, disable or enable, reset the
password (shown once), end every web session. The services do the checks (admin role, scope:
a user outside a restricted admin's scope is a 404 here too)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from jitadmin.core.errors import ValidationFailedError
from jitadmin.entrypoints.web.auth import Ctx, Form, FormVisitor, PageVisitor, Visitor, text
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import admin, users
from jitadmin.services.context import ROLES, ServiceContext

router = APIRouter(route_class=HtmlRoute, include_in_schema=False, prefix="/admin/users")


def user_page(
    ctx: ServiceContext, visitor: Visitor, username: str, *, status: int = 200, **extra: Any
) -> Response:
    extra.setdefault("errors", {})
    extra.setdefault("notice", "")
    extra.setdefault("reset", None)
    detail = users.show_user(ctx, visitor.user, username)
    return page(
        "admin_user.html", status, title=f"User {username}", visitor=visitor, detail=detail,
        roles=ROLES, customers=[c for c, _ in admin.list_customers(ctx, visitor.user)], **extra,
    )  # fmt: skip


def _errors(error: ValidationFailedError) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in error.problems:
        found.setdefault(problem.field, []).append(problem.rule)
    return found


@router.get("/{username}")
def user(ctx: Ctx, visitor: PageVisitor, username: str) -> Response:
    return user_page(ctx, visitor, username)


@router.post("/{username}")
def update_user(ctx: Ctx, visitor: FormVisitor, form: Form, username: str) -> Response:
    restrict = text(form, "restrict") == "yes"
    chosen = tuple(v for v in form.getlist("customers") if isinstance(v, str))
    change = users.UserChange(
        role=text(form, "role") or None,
        customers=chosen if restrict else None,
        set_customers=True,
    )
    try:
        users.update_user(ctx, visitor.user, username, change)
    except ValidationFailedError as error:
        return user_page(ctx, visitor, username, status=error.status, errors=_errors(error))
    return user_page(ctx, visitor, username, notice="Role and customers saved.")


@router.post("/{username}/disable")
def disable_user(ctx: Ctx, visitor: FormVisitor, form: Form, username: str) -> Response:
    revoke = text(form, "revoke_grants") == "yes"
    change = users.UserChange(disabled=True, revoke_grants=revoke)
    done = users.update_user(ctx, visitor.user, username, change)
    notice = f"{username} is disabled; {done.sessions_ended} web session(s) ended."
    if revoke:
        notice += f" {len(done.revoked_grants)} grant(s) are being revoked."
    for grant_id, why in done.not_revoked:
        notice += f" Grant {grant_id} was not revoked: {why}."
    return user_page(ctx, visitor, username, notice=notice)


@router.post("/{username}/enable")
def enable_user(ctx: Ctx, visitor: FormVisitor, username: str) -> Response:
    users.update_user(ctx, visitor.user, username, users.UserChange(disabled=False))
    return user_page(ctx, visitor, username, notice=f"{username} is enabled again.")


@router.post("/{username}/password-reset")
def reset_password(ctx: Ctx, visitor: FormVisitor, username: str) -> Response:
    reset = users.reset_password(ctx, visitor.user, username)
    return user_page(ctx, visitor, username, reset=reset)


@router.post("/{username}/end-sessions")
def end_sessions(ctx: Ctx, visitor: FormVisitor, username: str) -> Response:
    ended = users.end_sessions(ctx, visitor.user, username)
    return user_page(ctx, visitor, username, notice=f"{ended} web session(s) of {username} ended.")


@router.post("/{username}/second-factor-reset")
def reset_second_factor(ctx: Ctx, visitor: FormVisitor, username: str) -> Response:
    done = users.reset_second_factor(ctx, visitor.user, username)
    notice = (
        f"The second factor of {username} is removed; they set up a new one at next sign-in."
        if done
        else f"{username} has no second factor."
    )
    return user_page(ctx, visitor, username, notice=notice)
