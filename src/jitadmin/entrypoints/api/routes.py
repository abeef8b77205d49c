"""REST API v1 (paths and field names are a public interface). Thin: parse, call a service,
shape the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from jitadmin.connectors import REGISTRY, ConnectorRegistry
from jitadmin.core.clock import iso
from jitadmin.core.connectors import ConnectorFamily, ConnectorSpec
from jitadmin.core.errors import UnauthorizedError, ValidationFailedError
from jitadmin.entrypoints.api import responses as out
from jitadmin.entrypoints.api.responses import problem_responses
from jitadmin.entrypoints.api.schemas import (
    ApproveIn,
    CustomerIn,
    ExtendIn,
    GrantIn,
    PolicyIn,
    PsaIn,
    RejectIn,
    RevealIn,
    TokenIn,
    UserIn,
    event_out,
    grant_out,
    policy_out,
)
from jitadmin.ports import AuditQuery, User
from jitadmin.services import admin, approvals, console, grants, reveals
from jitadmin.services.context import ServiceContext

router = APIRouter(prefix="/api/v1", responses=problem_responses(401, 403, 422))
_bearer = HTTPBearer(auto_error=False)


def ctx_of(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> admin.Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("missing bearer token")
    caller = admin.authenticate_token(ctx_of(request), credentials.credentials)
    if caller is None:
        raise UnauthorizedError("invalid bearer token")
    return caller


Caller = Annotated[admin.Caller, Depends(current_caller)]


async def current_user(caller: Caller) -> User:
    return caller.user


async def _ctx(request: Request, caller: Caller) -> ServiceContext:
    # The context of this request: its audit events name the token that acted. (async: a
    # plain ``def`` dependency would cost a thread-pool round trip for an attribute lookup.)
    return ctx_of(request).acting(caller.credential)


Ctx = Annotated[ServiceContext, Depends(_ctx)]
Actor = Annotated[User, Depends(current_user)]


@router.get("/customers", response_model=out.CustomerList)
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


@router.post(
    "/customers",
    status_code=201,
    response_model=out.CustomerCreated,
    responses=problem_responses(409),
)
def create_customer(body: CustomerIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    c = admin.create_customer(
        ctx, actor, slug=body.slug, name=body.name, psa_company_id=str(body.psa_company_id),
        domain_prefix=body.domain_prefix, max_duration_minutes=body.max_duration_minutes,
    )  # fmt: skip
    return {"slug": c.slug, "name": c.name, "psa_company_id": c.psa_company_id,
            "domain_prefix": c.domain_prefix, "identity_providers": []}  # fmt: skip


def add_connection_routes(connectors: ConnectorRegistry) -> None:
    """``PUT /customers/{slug}/connections/{kind}`` for each identity provider, its body the
    provider's settings model (so /openapi.json shows each provider's fields)."""
    for connector in connectors.family(ConnectorFamily.IDENTITY_PROVIDER):
        if connector.spec.saved_by_admin:
            _add_put_connection(connector.spec)


def _add_put_connection(spec: ConnectorSpec) -> None:
    def put_connection(slug: str, body: BaseModel, ctx: Ctx, actor: Actor) -> dict[str, Any]:
        saved = admin.put_connection(ctx, actor, slug, spec.kind, body.model_dump())
        return {"customer": slug, "kind": spec.kind, "settings": saved}

    # FastAPI reads the body's schema from the annotation: this provider's model.
    put_connection.__annotations__["body"] = spec.settings
    router.put(
        f"/customers/{{slug}}/connections/{spec.kind}",
        name=f"put_{spec.kind}",
        summary=f"Save the customer's {spec.display_name} connection",
        response_model=out.ConnectionSaved,
        responses=problem_responses(404),
    )(put_connection)


add_connection_routes(REGISTRY)


@router.post(
    "/customers/{slug}/connections/{kind}/test",
    response_model=out.ConnectionChecked,
    responses=problem_responses(404, 503),
)
def test_connection(slug: str, kind: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    ctx.connector(kind, ConnectorFamily.IDENTITY_PROVIDER, "kind")
    return {"ok": True, "findings": admin.check_connection(ctx, actor, slug, kind)}


@router.get(
    "/customers/{slug}/policy", response_model=out.PolicyOut, responses=problem_responses(404)
)
def get_policy(slug: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return policy_out(slug, approvals.get_policy(ctx, actor, slug))


@router.put(
    "/customers/{slug}/policy", response_model=out.PolicyOut, responses=problem_responses(404)
)
def put_policy(slug: str, body: PolicyIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    policy = approvals.put_policy(
        ctx, actor, slug, max_duration_minutes=body.max_duration_minutes,
        approval_required=body.approval_required, approvals_needed=body.approvals_needed,
        approval_timeout_minutes=body.approval_timeout_minutes,
    )  # fmt: skip
    return policy_out(slug, policy)


@router.put("/psa", response_model=out.PsaSaved)
def put_psa(body: PsaIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return admin.put_psa(ctx, actor, body.model_dump())


@router.post("/psa/test", response_model=out.PsaChecked, responses=problem_responses(503))
def test_psa(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {"ok": True, **admin.check_psa(ctx, actor)}


@router.get(
    "/customers/{slug}/tickets",
    response_model=out.TicketList,
    responses=problem_responses(404, 503),
)
def list_tickets(slug: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {
        "items": [
            {"id": t.id, "number": t.number, "summary": t.summary, "status": t.status}
            for t in admin.list_tickets(ctx, actor, slug)
        ]
    }


@router.post(
    "/users", status_code=201, response_model=out.UserCreated, responses=problem_responses(409)
)
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


@router.get("/users", response_model=out.UserList)
def list_users(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {
        "items": [
            {
                "username": u.username,
                "role": u.role,
                "customers": None if u.customers is None else list(u.customers),
                "disabled": u.disabled,
            }
            for u in admin.list_users(ctx, actor)
        ]
    }


@router.post(
    "/grants",
    status_code=202,
    response_model=out.GrantRequested,
    responses=problem_responses(409, 503),
)
def request_grant(body: GrantIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    result = grants.request_grant(
        ctx, actor, customer=body.customer, identity_provider=body.identity_provider,
        ticket_id=str(body.ticket_id), duration_minutes=body.duration_minutes,
        reason=body.reason, password=body.password,
    )  # fmt: skip
    # The only response that ever carries the password.
    return {**grant_out(result.grant), "password": result.password}


@router.get("/grants", response_model=out.GrantList)
def list_grants(
    ctx: Ctx, actor: Actor, state: str | None = None, customer: str | None = None
) -> dict[str, Any]:
    return {
        "items": [
            grant_out(g) for g in grants.list_grants(ctx, actor, state=state, customer=customer)
        ]
    }


@router.get("/grants/{grant_id}", response_model=out.GrantDetail, responses=problem_responses(404))
def show_grant(grant_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    grant, events = grants.show_grant(ctx, actor, grant_id)
    return {**grant_out(grant), "events": [event_out(e) for e in events]}


@router.post(
    "/grants/{grant_id}/revoke",
    status_code=202,
    response_model=out.GrantOut,
    responses=problem_responses(404, 409),
)
def revoke(grant_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return grant_out(grants.revoke_now(ctx, actor, grant_id))


@router.post(
    "/grants/{grant_id}/extend",
    response_model=out.GrantOut,
    responses=problem_responses(404, 409, 503),
)
def extend(grant_id: str, body: ExtendIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return grant_out(grants.extend_grant(ctx, actor, grant_id, body.minutes))


@router.post(
    "/grants/{grant_id}/approve",
    response_model=out.GrantOut,
    responses=problem_responses(404, 409, 429, 503),
)
def approve(grant_id: str, ctx: Ctx, actor: Actor, body: ApproveIn | None = None) -> dict[str, Any]:
    return grant_out(approvals.approve(ctx, actor, grant_id, body.comment if body else None))


@router.post(
    "/grants/{grant_id}/reject", response_model=out.GrantOut, responses=problem_responses(404, 409)
)
def reject(grant_id: str, body: RejectIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return grant_out(approvals.reject(ctx, actor, grant_id, body.comment))


@router.post(
    "/grants/{grant_id}/cancel", response_model=out.GrantOut, responses=problem_responses(404, 409)
)
def cancel(grant_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return grant_out(approvals.cancel(ctx, actor, grant_id))


@router.post(
    "/grants/{grant_id}/password",
    response_model=out.Revealed,
    responses=problem_responses(404, 409, 429),
)
def reveal(grant_id: str, ctx: Ctx, actor: Actor, body: RevealIn | None = None) -> dict[str, Any]:
    password = reveals.reveal_password(ctx, actor, grant_id, body.reason if body else None)
    return {"id": grant_id, "password": password}


@router.post(
    "/grants/{grant_id}/temporary-access-pass",
    response_model=out.TemporaryAccessPass,
    responses=problem_responses(403, 404, 409),
)
def show_temporary_access_pass(grant_id: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    secret = reveals.show_temporary_access_pass(ctx, actor, grant_id)
    return {"id": grant_id, "temporary_access_pass": secret}


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValidationFailedError.single(name, "must be ISO 8601 with a UTC offset")
    return value


@router.get("/audit", response_model=out.AuditList)
def audit(
    ctx: Ctx,
    actor: Actor,
    grant_id: Annotated[str | None, Query(max_length=64)] = None,
    customer: Annotated[str | None, Query(max_length=64)] = None,
    by: Annotated[str | None, Query(alias="actor", max_length=200)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """The audit trail, newest ``limit`` entries, oldest first; filters combine with AND."""
    start, end = _aware("since", since), _aware("until", until)
    if start is not None and end is not None and end <= start:
        raise ValidationFailedError.single("until", "must be later than since")
    query = AuditQuery(grant_id=grant_id, customer=customer, actor=by, since=start, until=end)
    return {"items": [event_out(e) for e in admin.list_audit(ctx, actor, limit=limit, query=query)]}


@router.get("/tokens", response_model=out.TokenList)
def list_tokens(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {
        "items": [
            {"id": t.id, "username": t.username, "created_at": iso(t.created_at),
             "expires_at": iso(t.expires_at), "hint": t.hint}
            for t in console.list_tokens(ctx, actor)
        ]
    }  # fmt: skip


@router.post("/tokens", status_code=201, response_model=out.TokenIssued)
def issue_token(ctx: Ctx, actor: Actor, body: TokenIn | None = None) -> dict[str, Any]:
    # For the caller only (another username: 403). Shown this once; only a hash is stored.
    token = console.issue_token(ctx, actor, body.username if body else None)
    return {"username": actor.username, "token": token}


@router.delete(
    "/tokens/{token_id}", response_model=out.TokenRevoked, responses=problem_responses(404)
)
def revoke_token(token_id: int, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    removed = console.revoke_token(ctx, actor, token_id)
    return {"id": removed.id, "username": removed.username, "revoked": True}
