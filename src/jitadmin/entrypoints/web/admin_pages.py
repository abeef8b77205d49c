"""Admin pages: customers and their connections, the PSA, users, API tokens.

Every page calls a service that requires the admin role, so other roles get 403.
Secrets are write-only: forms never show them back.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from jitadmin.core.connectors import ConnectorFamily, ConnectorSpec
from jitadmin.core.errors import (
    ConflictError,
    NotFoundError,
    UpstreamUnavailableError,
    ValidationFailedError,
)
from jitadmin.entrypoints.web.auth import Ctx, Form, FormVisitor, PageVisitor, Visitor, text
from jitadmin.entrypoints.web.render import IDP_LABELS, page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import admin, agents, console
from jitadmin.services.context import ADMIN, ROLES, ServiceContext, require_role

router = APIRouter(route_class=HtmlRoute, include_in_schema=False, prefix="/admin")

IDENTITY_PROVIDER = ConnectorFamily.IDENTITY_PROVIDER
TICKET_SYSTEM = ConnectorFamily.TICKET_SYSTEM
CUSTOMER_FIELDS = ("slug", "name", "psa_company_id", "domain_prefix")


def _specs(ctx: ServiceContext, family: ConnectorFamily) -> list[ConnectorSpec]:
    return [s for s in ctx.connectors if s.family is family]


def errors_of(error: ValidationFailedError) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in error.problems:
        found.setdefault(problem.field, []).append(problem.rule)
    return found


def filled(form: FormData, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: text(form, n).strip() for n in names if text(form, n).strip()}


@router.get("")
def admin_home(visitor: PageVisitor) -> Response:
    require_role(visitor.user, ADMIN)
    return RedirectResponse("/admin/customers", status_code=303)


def customers_page(
    ctx: ServiceContext, visitor: Visitor, *, status: int = 200, **extra: Any
) -> Response:
    extra.setdefault("scope", "")
    extra.setdefault("errors", {})
    extra.setdefault("values", {})
    extra.setdefault("tested", None)
    extra.setdefault("notice", "")
    extra.setdefault("enrollment", None)
    setups = console.customer_setups(ctx, visitor.user)
    return page(
        "admin_customers.html",
        status,
        title="Customers and connections",
        visitor=visitor,
        setups=setups,
        # Each customer's on-prem agents with their state (online, offline, revoked).
        agents={
            c.customer.slug: agents.list_agents(ctx, visitor.user, c.customer.slug) for c in setups
        },
        connection_fields={s.kind: tuple(s.fields) for s in _specs(ctx, IDENTITY_PROVIDER)},
        secret_fields={s.kind: s.secret_fields for s in _specs(ctx, IDENTITY_PROVIDER)},
        idp_labels=IDP_LABELS,
        **extra,
    )


@router.get("/customers")
def customers(ctx: Ctx, visitor: PageVisitor) -> Response:
    return customers_page(ctx, visitor)


@router.post("/customers")
def create_customer(ctx: Ctx, visitor: FormVisitor, form: Form) -> Response:
    values = {n: text(form, n).strip() for n in CUSTOMER_FIELDS}
    try:
        admin.create_customer(
            ctx, visitor.user, slug=values["slug"], name=values["name"],
            psa_company_id=values["psa_company_id"], domain_prefix=values["domain_prefix"] or None,
        )  # fmt: skip
    except ValidationFailedError as error:
        return customers_page(
            ctx, visitor, status=error.status, scope="new", errors=errors_of(error), values=values
        )
    except ConflictError as error:
        return customers_page(
            ctx,
            visitor,
            status=error.status,
            scope="new",
            errors={"slug": [str(error)]},
            values=values,
        )
    return customers_page(ctx, visitor, notice=f"Customer {values['slug']} added.")


@router.post("/customers/{slug}/connections/{kind}")
def save_connection(ctx: Ctx, visitor: FormVisitor, form: Form, slug: str, kind: str) -> Response:
    spec = ctx.connectors.get(kind, IDENTITY_PROVIDER)
    if spec is None:
        raise NotFoundError("connection kind", kind)
    body = filled(form, tuple(spec.fields))
    scope = f"{slug}-{kind}"
    try:
        admin.put_connection(ctx, visitor.user, slug, kind, body)
    except ValidationFailedError as error:
        shown = {k: v for k, v in body.items() if k not in spec.secret_fields}
        return customers_page(
            ctx, visitor, status=error.status, scope=scope, errors=errors_of(error), values=shown
        )
    return customers_page(ctx, visitor, notice=f"{spec.display_name} connection of {slug} saved.")


@router.post("/customers/{slug}/connections/{kind}/test")
def test_connection(ctx: Ctx, visitor: FormVisitor, slug: str, kind: str) -> Response:
    try:
        findings = admin.check_connection(ctx, visitor.user, slug, kind)
        tested = {"slug": slug, "kind": kind, "ok": True, "messages": findings or ["connected"]}
    except (UpstreamUnavailableError, ValidationFailedError) as error:
        tested = {"slug": slug, "kind": kind, "ok": False, "messages": [str(error)]}
    return customers_page(ctx, visitor, tested=tested)


def psa_page(
    ctx: ServiceContext, visitor: Visitor, kind: str, *, status: int = 200, **extra: Any
) -> Response:
    current = console.psa_setup(ctx, visitor.user)
    kinds = ctx.connectors.ticket_systems
    if kind not in kinds:
        kind = current[0] if current else kinds[0]
    spec = ctx.connector(kind, TICKET_SYSTEM, "kind")
    extra.setdefault("errors", {})
    extra.setdefault("notice", "")
    extra.setdefault("tested", None)
    values = extra.pop("values", None)
    if values is None:
        values = dict(current[1]) if current and current[0] == kind else {}
    return page(
        "admin_psa.html", status, title="PSA connection", visitor=visitor, current=current,
        kind=kind, kinds=kinds, labels={s.kind: s.display_name for s in _specs(ctx, TICKET_SYSTEM)},
        fields=tuple(spec.fields), secret_fields=spec.secret_fields,
        required=spec.required_fields, values=values, **extra,
    )  # fmt: skip


@router.get("/psa")
def psa(ctx: Ctx, visitor: PageVisitor, kind: str = "") -> Response:
    return psa_page(ctx, visitor, kind)


@router.post("/psa")
def save_psa(ctx: Ctx, visitor: FormVisitor, form: Form) -> Response:
    kind = text(form, "kind")
    spec = ctx.connectors.get(kind, TICKET_SYSTEM)
    body = {"kind": kind, **filled(form, tuple(spec.fields) if spec else ())}
    try:
        admin.put_psa(ctx, visitor.user, body)
    except ValidationFailedError as error:
        secret = spec.secret_fields if spec else ()
        shown = {k: v for k, v in body.items() if k not in secret}
        return psa_page(
            ctx, visitor, kind, status=error.status, errors=errors_of(error), values=shown
        )
    return psa_page(ctx, visitor, kind, notice="PSA connection saved.")


@router.post("/psa/test")
def test_psa(ctx: Ctx, visitor: FormVisitor) -> Response:
    try:
        found = admin.check_psa(ctx, visitor.user)
        tested = {"ok": True, "messages": list(found.get("findings") or ["connected"])}
    except (UpstreamUnavailableError, ValidationFailedError) as error:
        tested = {"ok": False, "messages": [str(error)]}
    return psa_page(ctx, visitor, "", tested=tested)


def users_page(
    ctx: ServiceContext, visitor: Visitor, *, status: int = 200, **extra: Any
) -> Response:
    extra.setdefault("errors", {})
    extra.setdefault("values", {})
    extra.setdefault("created", None)
    return page(
        "admin_users.html", status, title="Users", visitor=visitor,
        users=admin.list_users(ctx, visitor.user), roles=ROLES,
        customers=[c for c, _ in admin.list_customers(ctx, visitor.user)], **extra,
    )  # fmt: skip


@router.get("/users")
def users(ctx: Ctx, visitor: PageVisitor) -> Response:
    return users_page(ctx, visitor)


@router.post("/users")
def add_user(ctx: Ctx, visitor: FormVisitor, form: Form) -> Response:
    restrict = text(form, "restrict") == "yes"
    chosen = [v for v in form.getlist("customers") if isinstance(v, str)]
    values = {"username": text(form, "username").strip(), "role": text(form, "role")}
    try:
        created = admin.add_user(
            ctx, visitor.user, username=values["username"], role=values["role"],
            customers=chosen if restrict else None,
        )  # fmt: skip
    except ValidationFailedError as error:
        return users_page(ctx, visitor, status=error.status, errors=errors_of(error), values=values)
    except ConflictError as error:
        return users_page(
            ctx, visitor, status=error.status, errors={"username": [str(error)]}, values=values
        )
    return users_page(ctx, visitor, created=created)


def tokens_page(
    ctx: ServiceContext, visitor: Visitor, *, status: int = 200, **extra: Any
) -> Response:
    extra.setdefault("issued", None)
    extra.setdefault("notice", "")
    return page(
        "admin_tokens.html", status, title="API tokens", visitor=visitor,
        tokens=console.list_tokens(ctx, visitor.user), **extra,
    )  # fmt: skip


@router.get("/tokens")
def tokens(ctx: Ctx, visitor: PageVisitor) -> Response:
    return tokens_page(ctx, visitor)


@router.post("/tokens")
def issue_token(ctx: Ctx, visitor: FormVisitor, form: Form) -> Response:
    # Only for the visitor themselves; a posted username naming anyone else is refused (403).
    require_role(visitor.user, ADMIN)  # the page that shows it is an admin page
    token = console.issue_token(ctx, visitor.user, text(form, "username") or None)
    return tokens_page(ctx, visitor, issued={"username": visitor.user.username, "token": token})


@router.post("/tokens/{token_id}/revoke")
def revoke_token(ctx: Ctx, visitor: FormVisitor, token_id: int) -> Response:
    removed = console.revoke_token(ctx, visitor.user, token_id)
    return tokens_page(ctx, visitor, notice=f"Token {removed.hint}… of {removed.username} revoked.")
