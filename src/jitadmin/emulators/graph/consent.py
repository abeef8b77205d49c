"""Entra's admin-consent endpoint, as a customer admin meets it, and the registration controls.

``GET /login/{tenant}/adminconsent?client_id=…&redirect_uri=…&state=…`` (and the ``/v2.0/``
form with ``scope``) shows the consent prompt; Accept consents the app in the tenant (its
service principal, holding the registration's application permissions) and redirects to
``redirect_uri?admin_consent=True&tenant=<id>&state=…``; Cancel redirects with
``error=access_denied&error_description=AADSTS65004: …``
(https://learn.microsoft.com/entra/identity-platform/v2-admin-consent). An unknown client id or
a redirect URI that is not exactly one of the app's is an error page, never a redirect (Entra
never sends the browser to an unregistered address). ``organizations`` lets the signing-in
admin's tenant decide: the emulator asks which tenant that is.

Test controls (no auth): ``PUT /_admin/app-registration`` ``{"redirect_uris"}``,
``POST /_admin/app-registration/certificates`` ``{"pem"}``,
``PUT /_admin/tenants/{tenant}/consent`` ``{"consented", "identity_pending_requests"?}``.
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from jitadmin.emulators.graph.state import GraphState

_GENERIC_TENANTS = frozenset({"organizations", "common"})


class RedirectUris(BaseModel):
    redirect_uris: list[str]


class CertificateIn(BaseModel):
    pem: str


class ConsentIn(BaseModel):
    consented: bool
    identity_pending_requests: int = 0


def _error_page(status: int, code: int, message: str) -> HTMLResponse:
    body = (
        "<h1>Sorry, but we're having trouble signing you in.</h1>"
        f"<p>AADSTS{code}: {escape(message)}</p>"
    )
    return HTMLResponse(f"<!doctype html><title>Sign in</title>{body}", status_code=status)


def _redirect(redirect_uri: str, params: dict[str, str]) -> Response:
    joiner = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + joiner + urlencode(params), status_code=302)


def consent_router(graph: GraphState) -> APIRouter:
    router = APIRouter()

    def problem(client_id: str, redirect_uri: str) -> HTMLResponse | None:
        reg = graph.registration
        if client_id.lower() != reg.client_id:
            return _error_page(
                400, 700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )  # fmt: skip
        if redirect_uri not in reg.redirect_uris:
            return _error_page(
                400, 50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'.",
            )  # fmt: skip
        return None

    def prompt(tenant: str, client_id: str, redirect_uri: str, state_value: str) -> Response:
        reg = graph.registration
        choose = ""
        if tenant.lower() in _GENERIC_TENANTS:
            options = "".join(
                f'<option value="{escape(t.id)}">{escape(t.domains[0].id)}</option>'
                for t in graph.all_tenants()
            )
            choose = (
                '<label for="tenant">Sign in to</label>'
                f'<select id="tenant" name="tenant">{options}</select>'
            )
        permissions = "".join(f"<li>{escape(p)}</li>" for p in reg.required_permissions)
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{escape(v)}">'
            for k, v in (("client_id", client_id), ("redirect_uri", redirect_uri),
                         ("state", state_value))
        )  # fmt: skip
        html = (
            "<!doctype html><title>Permissions requested</title>"
            f"<h1>Permissions requested</h1><p>{escape(reg.display_name)} wants to:</p>"
            f"<ul>{permissions}</ul><form method=post>{hidden}{choose}"
            '<button id="accept" name="decision" value="accept">Accept</button>'
            '<button id="cancel" name="decision" value="cancel">Cancel</button></form>'
        )
        return HTMLResponse(html)

    @router.get("/login/{tenant}/adminconsent")
    @router.get("/login/{tenant}/v2.0/adminconsent")
    async def show(
        tenant: str, client_id: str = "", redirect_uri: str = "", state: str = ""
    ) -> Response:
        refused = problem(client_id, redirect_uri)
        if refused is not None:
            return refused
        if tenant.lower() not in _GENERIC_TENANTS and _resolve(tenant) is None:
            return _error_page(400, 90002, f"Tenant '{tenant}' not found.")
        return prompt(tenant, client_id, redirect_uri, state)

    def _resolve(tenant: str) -> str | None:
        return graph.resolve_tenant(tenant)

    @router.post("/login/{tenant}/adminconsent")
    @router.post("/login/{tenant}/v2.0/adminconsent")
    async def decide(
        request: Request,
        tenant: str,
        client_id: Annotated[str, Form()] = "",
        redirect_uri: Annotated[str, Form()] = "",
        state: Annotated[str, Form()] = "",
        decision: Annotated[str, Form()] = "",
    ) -> Response:
        refused = problem(client_id, redirect_uri)
        if refused is not None:
            return refused
        form = await request.form()
        chosen = form.get("tenant") if tenant.lower() in _GENERIC_TENANTS else tenant
        tenant_id = _resolve(str(chosen or ""))
        if tenant_id is None:
            return _error_page(400, 90002, f"Tenant '{chosen}' not found.")
        if decision != "accept":
            return _redirect(redirect_uri, {
                "error": "access_denied",
                "error_description": "AADSTS65004: User declined to consent to access the app.",
                "state": state,
            })  # fmt: skip
        graph.grant_admin_consent(tenant_id)
        return _redirect(
            redirect_uri, {"admin_consent": "True", "tenant": tenant_id, "state": state}
        )

    @router.put("/_admin/app-registration")
    async def put_registration(body: RedirectUris) -> dict[str, Any]:
        graph.set_redirect_uris(body.redirect_uris)
        return {"client_id": graph.registration.client_id, "redirect_uris": body.redirect_uris}

    @router.post("/_admin/app-registration/certificates", status_code=201)
    async def add_certificate(body: CertificateIn) -> dict[str, str]:
        return {"sha256_thumbprint": graph.register_certificate(body.pem)}

    @router.put("/_admin/tenants/{tenant}/consent")
    async def put_consent(tenant: str, body: ConsentIn) -> dict[str, Any]:
        tenant_id = _resolve(tenant)
        if tenant_id is None:
            return {"error": "unknown tenant"}
        if body.consented:
            graph.grant_admin_consent(
                tenant_id, identity_pending_requests=body.identity_pending_requests
            )
        else:
            graph.set_app(tenant_id, consented=False)
        return {"tenant": tenant_id, "consented": body.consented}

    return router
