"""The console's side of the MSP app: its settings page (unrestricted admins), the "Connect
with admin consent" button of a customer's connection, and the page Entra sends the admin back
to after consent.

Session cookies are SameSite=Strict, so the redirect from login.microsoftonline.com arrives
without one: that first visit shows a page whose link repeats the same address from our own
origin, which carries the cookie. The signed ``state`` (services/apps.py) ties the answer to the
admin who asked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from jitadmin.connectors import REGISTRY
from jitadmin.core.connectors import ConnectorFamily, SharedApp
from jitadmin.core.errors import NotFoundError, ValidationFailedError
from jitadmin.entrypoints.api.app_routes import default_redirect
from jitadmin.entrypoints.web.admin_pages import customers_page, errors_of, filled
from jitadmin.entrypoints.web.auth import (
    Ctx,
    Form,
    FormVisitor,
    PageVisitor,
    Visitor,
    optional_visitor,
)
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import apps
from jitadmin.services.context import ServiceContext

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

_APPS: dict[str, tuple[str, SharedApp]] = {
    c.spec.app.name: (c.kind, c.spec.app)
    for c in REGISTRY.family(ConnectorFamily.IDENTITY_PROVIDER)
    if c.spec.app is not None
}


def _app_of(name: str) -> tuple[str, SharedApp]:
    if name not in _APPS:
        raise NotFoundError("app", name)
    return _APPS[name]


def app_page(
    ctx: ServiceContext, visitor: Visitor, request: Request, name: str, *, status: int = 200,
    **extra: Any,
) -> Response:  # fmt: skip
    kind, app = _app_of(name)
    current = apps.get_app(ctx, visitor.user, kind)
    extra.setdefault("errors", {})
    extra.setdefault("notice", "")
    values = extra.pop("values", None)
    return page(
        "admin_app.html", status, title="MSP app", visitor=visitor, name=name, current=current,
        fields=tuple(app.fields), secret_fields=app.secret_fields, required=app.required_fields,
        values=values if values is not None else dict(current or {}),
        redirect_uri=(current or {}).get("redirect_uri")
        or default_redirect(request, ctx.public_url, app),
        active="app", **extra,
    )  # fmt: skip


@router.get("/admin/{name}-app")
def show_app(ctx: Ctx, visitor: PageVisitor, request: Request, name: str) -> Response:
    return app_page(ctx, visitor, request, f"{name}-app")


@router.post("/admin/{name}-app")
def save_app(ctx: Ctx, visitor: FormVisitor, form: Form, request: Request, name: str) -> Response:
    kind, app = _app_of(f"{name}-app")
    body = filled(form, tuple(app.fields))
    try:
        apps.put_app(ctx, visitor.user, kind, body)
    except ValidationFailedError as error:
        shown = {k: v for k, v in body.items() if k not in app.secret_fields}
        return app_page(ctx, visitor, request, f"{name}-app", status=error.status,
                        errors=errors_of(error), values=shown)  # fmt: skip
    return app_page(ctx, visitor, request, f"{name}-app", notice="MSP app saved.")


@router.get("/admin/customers/{slug}/connections/{kind}/consent")
def start_consent(
    ctx: Ctx, visitor: PageVisitor, request: Request, slug: str, kind: str
) -> Response:
    """A link, not a form: the console's CSP (form-action 'self') would stop a form's redirect
    to Entra. Nothing changes here; the signed state is all it makes."""
    spec = ctx.connector(kind, ConnectorFamily.IDENTITY_PROVIDER, "kind")
    if spec.app is None:
        raise NotFoundError("app", kind)
    try:
        link = apps.consent_link(
            ctx, visitor.user, slug, kind, default_redirect(request, ctx.public_url, spec.app)
        )
    except ValidationFailedError as error:
        tested = {"slug": slug, "kind": kind, "ok": False, "messages": [str(error)]}
        return customers_page(ctx, visitor, status=error.status, tested=tested)
    return RedirectResponse(link.url, status_code=303)


def _finish(ctx: ServiceContext, visitor: Visitor, params: dict[str, str]) -> Response:
    outcome = apps.complete_consent(ctx, visitor.user, params)
    messages = outcome.findings if outcome.ok else [outcome.error or "consent failed"]
    tested = {"slug": outcome.customer, "kind": "m365", "ok": outcome.ok,
              "messages": messages, "consent": True}  # fmt: skip
    notice = f"Admin consent granted in tenant {outcome.tenant}." if outcome.ok else ""
    return customers_page(ctx, visitor, tested=tested, notice=notice)


for _name, (_kind, _app) in _APPS.items():

    @router.get(_app.consent_path, name=f"{_kind}_consent_return")
    def consent_return(ctx: Ctx, request: Request) -> Response:
        params = dict(request.query_params.items())
        found = optional_visitor(request)
        if found is None:
            # Arrived from Entra without our (SameSite=Strict) cookie: continue from our origin.
            return page("consent_continue.html", 200, title="Finish connecting",
                        again=str(request.url.include_query_params(**params)))  # fmt: skip
        return _finish(ctx, found, params)
