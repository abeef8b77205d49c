"""The request form and the result page that shows the password once.

The form labels are the ones the MSP's technicians know: keep them word for word.

The form renders from the database alone: tickets come later from the PSA through
``/web/api/customers/{slug}/tickets``, so a slow PSA never slows the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from jitadmin.core.errors import (
    ConflictError,
    FieldProblem,
    RateLimitedError,
    UpstreamUnavailableError,
    ValidationFailedError,
)
from jitadmin.core.passwords import generate_password
from jitadmin.entrypoints.web.auth import Ctx, Form, FormVisitor, PageVisitor, Visitor, text
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import admin, grants
from jitadmin.services.context import ServiceContext

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

FIELDS = ("identity_provider", "customer", "ticket_id", "duration_minutes", "reason", "password")
DEFAULT_MINUTES = "60"
LABELS = {
    "identity_provider": "Identity Provider", "customer": "Customer", "ticket_id": "Ticket",
    "duration_minutes": "Duration (minutes)", "reason": "Reason",
    "password": "Temporary Password", "form": "Request",
}  # fmt: skip


@dataclass(frozen=True)
class CustomerChoice:
    slug: str
    name: str
    identity_providers: list[str]


@dataclass
class Alert:
    message: str
    grant_id: str | None = None


def _customers(ctx: ServiceContext, visitor: Visitor) -> list[CustomerChoice]:
    return [
        CustomerChoice(c.slug, c.name, kinds)
        for c, kinds in admin.list_customers(ctx, visitor.user)
    ]


def render_form(
    ctx: ServiceContext,
    visitor: Visitor,
    values: dict[str, str],
    *,
    errors: dict[str, list[str]] | None = None,
    alert: Alert | None = None,
    status: int = 200,
) -> Response:
    customers = _customers(ctx, visitor)
    if not values.get("customer") and len(customers) == 1:
        values["customer"] = customers[0].slug
    chosen = next((c for c in customers if c.slug == values.get("customer")), None)
    # Only the identity providers configured for the chosen customer (all, until one is).
    offered = (
        chosen.identity_providers
        if chosen
        else sorted({k for c in customers for k in c.identity_providers})
    )
    if values.get("identity_provider") not in offered and offered:
        values["identity_provider"] = offered[0]
    return page(
        "form.html",
        status,
        title="Request admin access",
        visitor=visitor,
        customers=customers,
        offered=offered,
        values=values,
        errors=errors or {},
        labels=LABELS,
        alert=alert,
    )


@router.get("/")
def form_page(ctx: Ctx, visitor: PageVisitor) -> Response:
    values = {"duration_minutes": DEFAULT_MINUTES, "password": generate_password()}
    return render_form(ctx, visitor, values)


@router.get("/request")
def request_get() -> Response:
    return RedirectResponse("/", status_code=303)


def _by_field(problems: list[FieldProblem]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for problem in problems:
        name = problem.field if problem.field in FIELDS else "form"
        errors.setdefault(name, []).append(problem.rule)
    return errors


def _minutes(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        # Turning text into a number is this entrypoint's job; the range is the service's.
        raise ValidationFailedError.single(
            "duration_minutes", "must be a whole number of minutes"
        ) from None


@router.post("/request")
def submit(ctx: Ctx, visitor: FormVisitor, form: Form) -> Response:
    values = {name: text(form, name) for name in FIELDS}
    if text(form, "refresh_password"):
        # The Refresh button without JavaScript: the same form with a new password.
        values["password"] = generate_password()
        return render_form(ctx, visitor, values)
    try:
        if not values["customer"].strip():
            raise ValidationFailedError.single("customer", "choose a customer")
        result = grants.request_grant(
            ctx, visitor.user, customer=values["customer"].strip(),
            identity_provider=values["identity_provider"], ticket_id=values["ticket_id"].strip(),
            duration_minutes=_minutes(values["duration_minutes"]), reason=values["reason"],
            password=values["password"] or None,
        )  # fmt: skip
    except ValidationFailedError as error:
        return render_form(
            ctx, visitor, values, errors=_by_field(error.problems), status=error.status
        )
    except ConflictError as error:
        return render_form(
            ctx, visitor, values, alert=Alert(str(error), error.existing_id), status=error.status
        )
    except UpstreamUnavailableError as error:
        return render_form(ctx, visitor, values, alert=Alert(str(error)), status=error.status)
    except RateLimitedError as error:
        limited = render_form(ctx, visitor, values, alert=Alert(str(error)), status=error.status)
        limited.headers["Retry-After"] = str(error.retry_after_s)
        return limited
    # The one page that shows the password; it is in no URL, session or log.
    return page(
        "result.html",
        title="Access requested",
        visitor=visitor,
        grant=result.grant,
        password=result.password,
        customer_name=next(
            (c.name for c in _customers(ctx, visitor) if c.slug == result.grant.customer),
            result.grant.customer,
        ),
    )
