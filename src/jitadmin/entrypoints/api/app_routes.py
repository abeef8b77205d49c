"""REST API v1: the MSP's shared app registration (``PUT /api/v1/m365-app``) and onboarding a
customer tenant through admin consent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from jitadmin.connectors import REGISTRY, ConnectorRegistry
from jitadmin.core.connectors import ConnectorFamily, ConnectorSpec, SharedApp
from jitadmin.entrypoints.api.responses import problem_responses
from jitadmin.entrypoints.api.routes import Actor, Ctx
from jitadmin.services import apps

router = APIRouter(prefix="/api/v1", responses=problem_responses(401, 403, 422))


class AppSaved(BaseModel):
    """The saved app settings, never its secrets."""

    model_config = ConfigDict(extra="allow")
    client_id: str


class AppOut(BaseModel):
    configured: bool
    settings: dict[str, Any] | None


class ConsentLinkOut(BaseModel):
    url: str
    tenant: str
    redirect_uri: str
    state: str
    expires_at: str


class ConsentIn(BaseModel):
    """The query of Entra's redirect back to ``redirect_uri``, as the browser received it."""

    model_config = ConfigDict(extra="ignore")
    state: str
    admin_consent: str | None = None
    tenant: str | None = None
    error: str | None = None
    error_description: str | None = None


class ConsentOut(BaseModel):
    customer: str
    ok: bool
    tenant: str | None
    findings: list[str]
    error: str | None


def default_redirect(request: Request, public_url: str, app: SharedApp) -> str:
    """Where Entra sends the admin back: the console's own consent page."""
    base = public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return base + app.consent_path


def add_app_routes(connectors: ConnectorRegistry) -> None:
    for connector in connectors.family(ConnectorFamily.IDENTITY_PROVIDER):
        if connector.spec.app is not None:
            _add(connector.spec, connector.spec.app)


def _add(spec: ConnectorSpec, app: SharedApp) -> None:
    kind = spec.kind

    def put_app(body: BaseModel, ctx: Ctx, actor: Actor) -> dict[str, Any]:
        return apps.put_app(ctx, actor, kind, body.model_dump())

    put_app.__annotations__["body"] = app.settings
    router.put(
        f"/{app.name}", name=f"put_{kind}_app", response_model=AppSaved,
        summary=f"Save the MSP's {spec.display_name} app (client id and credential, once)",
    )(put_app)  # fmt: skip

    @router.get(f"/{app.name}", name=f"get_{kind}_app", response_model=AppOut)
    def get_app(ctx: Ctx, actor: Actor) -> dict[str, Any]:
        found = apps.get_app(ctx, actor, kind)
        return {"configured": found is not None, "settings": found}

    @router.get(
        f"/customers/{{slug}}/connections/{kind}/consent-link", name=f"{kind}_consent_link",
        response_model=ConsentLinkOut, responses=problem_responses(404),
    )  # fmt: skip
    def consent_link(slug: str, request: Request, ctx: Ctx, actor: Actor) -> dict[str, Any]:
        link = apps.consent_link(
            ctx, actor, slug, kind, default_redirect(request, ctx.public_url, app)
        )
        return {"url": link.url, "tenant": link.tenant, "redirect_uri": link.redirect_uri,
                "state": link.state, "expires_at": link.expires_at}  # fmt: skip

    @router.post(f"/{app.name}/consent", name=f"{kind}_consent", response_model=ConsentOut,
                 responses=problem_responses(404))  # fmt: skip
    def consent(body: ConsentIn, ctx: Ctx, actor: Actor) -> dict[str, Any]:
        params = {k: v for k, v in body.model_dump().items() if v is not None}
        outcome = apps.complete_consent(ctx, actor, params)
        return {"customer": outcome.customer, "ok": outcome.ok, "tenant": outcome.tenant,
                "findings": outcome.findings, "error": outcome.error}  # fmt: skip


add_app_routes(REGISTRY)
