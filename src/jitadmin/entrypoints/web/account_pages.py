"""The visitor's own second factor: set up TOTP (secret and otpauth URI shown, confirmed by a
first code), then the recovery codes, shown once. A role that needs a second factor sees only
these pages until it is set up (``auth.EnrolmentRequiredError``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from jitadmin.core.errors import ValidationFailedError
from jitadmin.entrypoints.web.auth import (
    ENROLMENT_PATH,
    Ctx,
    Form,
    FormVisitor,
    PageVisitor,
    Visitor,
    text,
)
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import second_factor
from jitadmin.services.context import ServiceContext

router = APIRouter(route_class=HtmlRoute, include_in_schema=False, prefix=ENROLMENT_PATH)


def factor_page(
    ctx: ServiceContext, visitor: Visitor, *, status: int = 200, **extra: Any
) -> Response:
    extra.setdefault("pending", second_factor.pending_enrolment(ctx, visitor.user))
    extra.setdefault("recovery_codes", None)
    extra.setdefault("error", "")
    username = visitor.user.username
    return page(
        "account_second_factor.html", status, title="Second factor", visitor=visitor,
        enrolled=second_factor.enrolled(ctx, username),
        required=second_factor.required_for(ctx, visitor.user),
        codes_left=second_factor.recovery_codes_left(ctx, username), **extra,
    )  # fmt: skip


@router.get("")
def show(ctx: Ctx, visitor: PageVisitor) -> Response:
    return factor_page(ctx, visitor)


@router.post("/start")
def start(ctx: Ctx, visitor: FormVisitor) -> Response:
    return factor_page(ctx, visitor, pending=second_factor.start_enrolment(ctx, visitor.user))


@router.post("/confirm")
def confirm(ctx: Ctx, visitor: FormVisitor, form: Form) -> Response:
    try:
        codes = second_factor.confirm_enrolment(ctx, visitor.user, text(form, "code"))
    except ValidationFailedError as error:
        return factor_page(ctx, visitor, status=error.status, error=error.problems[0].rule)
    return factor_page(ctx, visitor, pending=None, recovery_codes=codes)
