"""REST API v1 (DESIGN.md §6). Thin: parse, call a service, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jitadmin.core.errors import ValidationFailedError
from jitadmin.entrypoints.api.schemas import (
    AdConnectionIn,
    CustomerIn,
    ExtendIn,
    GrantIn,
    M365ConnectionIn,
    PsaIn,
    RevealIn,
    UserIn,
    event_out,
    grant_out,
)
from jitadmin.ports import User
from jitadmin.services import admin, grants
from jitadmin.services.context import ServiceContext

router = APIRouter(prefix="/api/v1")
_bearer = HTTPBearer(auto_error=False)


class UnauthorizedError(Exception):
    pass


def ctx_of(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("missing bearer token")
    user = admin.authenticate_token(ctx_of(request), credentials.credentials)
    if user is None:
        raise UnauthorizedError("invalid bearer token")
    return user


Ctx = Annotated[ServiceContext, Depends(ctx_of)]
Actor = Annotated[User, Depends(current_user)]


@router.get("/customers")
def list_customers(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {
        "items": [
            {
                "slug": c.slug,
                "name": c.name,
                "psa_company_id": c.psa_company_id,
                "domain_prefix": c.domain_prefix,
                "max_duration_minutes": c.max_duration_minutes or 480,
                "identity_providers": kinds,
            }
            for c, kinds in admin.list_customers(ctx, actor)
        ]
    }


@router.post("/customers", status_code=201)
def create_customer(body: CustomerIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    c = admin.create_customer(
        ctx, actor, slug=body.slug, name=body.name, psa_company_id=str(body.psa_company_id),
        domain_prefix=body.domain_prefix, max_duration_minutes=body.max_duration_minutes,
    )  # fmt: skip
    return {"slug": c.slug, "name": c.name, "psa_company_id": c.psa_company_id,
            "domain_prefix": c.domain_prefix, "identity_providers": []}  # fmt: skip


@router.put("/customers/{slug}/connections/m365")
def put_m365(slug: str, body: M365ConnectionIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    saved = admin.put_connection(ctx, actor, slug, "m365", body.model_dump())
    return {"customer": slug, "kind": "m365", "settings": saved}


@router.put("/customers/{slug}/connections/ad")
def put_ad(slug: str, body: AdConnectionIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    saved = admin.put_connection(ctx, actor, slug, "ad", body.model_dump())
    return {"customer": slug, "kind": "ad", "settings": saved}


@router.post("/customers/{slug}/connections/{kind}/test")
def test_connection(slug: str, kind: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    if kind not in ("m365", "ad"):
        raise ValidationFailedError.single("kind", "must be m365 or ad")
    return {"ok": True, "findings": admin.check_connection(ctx, actor, slug, kind)}


@router.put("/psa")
def put_psa(body: PsaIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return admin.put_psa(ctx, actor, body.model_dump())


@router.post("/psa/test")
def test_psa(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {"ok": True, **admin.check_psa(ctx, actor)}


@router.get("/customers/{slug}/tickets")
def list_tickets(slug: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {
        "items": [
            {"id": t.id, "number": t.number, "summary": t.summary, "status": t.status}
            for t in admin.list_tickets(ctx, actor, slug)
        ]
    }


@router.post("/users", status_code=201)
def add_user(body: UserIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    new = admin.add_user(
        ctx, actor, username=body.username, role=body.role, customers=body.customers
    )
    return {
        "username": new.user.username,
        "role": new.user.role,
        "password": new.password,
        "token": new.token,
    }


@router.get("/users")
def list_users(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {
        "items": [
            {
                "username": u.username,
                "role": u.role,
                "customers": None if u.customers is None else list(u.customers),
            }
            for u in admin.list_users(ctx, actor)
        ]
    }


@router.post("/grants", status_code=202)
def request_grant(body: GrantIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    result = grants.request_grant(
        ctx, actor, customer=body.customer, identity_provider=body.identity_provider,
        ticket_id=str(body.ticket_id), duration_minutes=body.duration_minutes,
        reason=body.reason, password=body.password,
    )  # fmt: skip
    # The only response that ever carries the password.
    return {**grant_out(result.grant), "password": result.password}


@router.get("/grants")
def list_grants(
    ctx: Ctx, actor: Actor, state: str | None = None, customer: str | None = None
) -> dict[str, Any]:
    return {
        "items": [
            grant_out(g) for g in grants.list_grants(ctx, actor, state=state, customer=customer)
        ]
    }


@router.get("/grants/{grant_id}")
def show_grant(grant_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    grant, events = grants.show_grant(ctx, actor, grant_id)
    return {**grant_out(grant), "events": [event_out(e) for e in events]}


@router.post("/grants/{grant_id}/revoke", status_code=202)
def revoke(grant_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return grant_out(grants.revoke_now(ctx, actor, grant_id))


@router.post("/grants/{grant_id}/extend")
def extend(grant_id: str, body: ExtendIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return grant_out(grants.extend_grant(ctx, actor, grant_id, body.minutes))


@router.post("/grants/{grant_id}/password")
def reveal(grant_id: str, ctx: Ctx, actor: Actor, body: RevealIn | None = None) -> dict[str, Any]:
    password = grants.reveal_password(ctx, actor, grant_id, body.reason if body else None)
    return {"id": grant_id, "password": password}


@router.get("/audit")
def audit(ctx: Ctx, actor: Actor, grant_id: str | None = None, limit: int = 500) -> dict[str, Any]:
    return {
        "items": [
            event_out(e) for e in admin.list_audit(ctx, actor, grant_id, min(max(limit, 1), 5000))
        ]
    }
