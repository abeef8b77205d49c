"""Microsoft 365 as a connector: its settings, its words in ticket notes, its adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict

from jitadmin.adapters.m365.auth import CANONICAL_AUTHORITY
from jitadmin.adapters.m365.certificate import credential_problems
from jitadmin.adapters.m365.client import GRAPH_URL
from jitadmin.adapters.m365.connection import M365Connection
from jitadmin.adapters.m365.directory import UPN_DOMAIN_MAX, UPN_DOMAIN_RULE
from jitadmin.adapters.m365.provider import M365IdentityProvider
from jitadmin.core.connectors import (
    SECRET,
    SERVER_URL,
    AccessWording,
    AdapterEnv,
    ConnectorFamily,
    ConnectorSpec,
    SharedApp,
)
from jitadmin.core.naming import TENANT_ID_RULE, is_tenant_id, normalised


class M365Settings(BaseModel):
    """One customer tenant, reached with an app registration (client credentials).

    Without ``client_id`` the MSP's multi-tenant app (``PUT /api/v1/m365-app``) is used, and
    the customer needs only its tenant id or domain."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    tenant_id: str  # the tenant's GUID or one of its domain names
    client_id: str | None = None  # default: the MSP app's
    client_secret: Annotated[str | None, SECRET] = None
    certificate_pem: str | None = None  # a certificate credential instead of the secret
    private_key_pem: Annotated[str | None, SECRET] = None
    domain: str | None = None  # the domain of new accounts; default: the tenant's initial one
    authority_url: Annotated[str | None, SERVER_URL] = None  # default login.microsoftonline.com
    graph_url: Annotated[str | None, SERVER_URL] = None  # default graph.microsoft.com/v1.0
    # What the technician signs in with: the one-time password, or a Temporary Access Pass
    # (lets a new admin sign in where MFA registration would be forced on a throw-away account).
    m365_credential: Literal["password", "tap"] = "password"
    # Global Administrator as a time-bound PIM assignment where the tenant has Entra ID P2
    # ("auto"; the role then ends in the tenant even if jitadmin is gone), or always a plain one.
    m365_pim: Literal["auto", "off"] = "auto"


class M365AppSettings(BaseModel):
    """The MSP's one multi-tenant app registration, consented in each customer tenant."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    client_id: str
    client_secret: Annotated[str | None, SECRET] = None
    certificate_pem: str | None = None
    private_key_pem: Annotated[str | None, SECRET] = None
    authority_url: Annotated[str | None, SERVER_URL] = None
    graph_url: Annotated[str | None, SERVER_URL] = None
    # Where Entra sends the admin back after consent; it must be one of the app's redirect
    # URIs. Default: {JITADMIN_PUBLIC_URL}/admin/m365/consent.
    redirect_uri: Annotated[str | None, SERVER_URL] = None


_CREDENTIALS = ("client_secret", "certificate_pem", "private_key_pem")


def _check(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Settings and secrets together (the service passes both)."""
    problems: list[tuple[str, str]] = []
    if settings.get("client_id"):
        problems.extend(credential_problems(settings))
    else:
        problems.extend(
            (name, "needs client_id (without one, the MSP app's credential is used)")
            for name in _CREDENTIALS
            if settings.get(name)
        )
    tenant = settings.get("tenant_id")
    if tenant is not None and not is_tenant_id(str(tenant)):
        problems.append(("tenant_id", TENANT_ID_RULE))
    domain = settings.get("domain")
    if domain and len(str(domain)) > UPN_DOMAIN_MAX:
        problems.append(("domain", UPN_DOMAIN_RULE))
    return problems


def _check_app(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    return credential_problems(settings)


def consent_url(app: Mapping[str, Any], tenant: str, redirect_uri: str, state: str) -> str:
    """Entra's admin-consent endpoint for the MSP app: a customer admin signs in there and
    consents to the app's configured application permissions in their tenant
    (https://learn.microsoft.com/entra/identity-platform/v2-admin-consent)."""
    authority = str(app.get("authority_url") or CANONICAL_AUTHORITY).rstrip("/")
    query = urlencode({"client_id": app["client_id"], "redirect_uri": redirect_uri, "state": state})
    return f"{authority}/{quote(tenant, safe='')}/adminconsent?{query}"


APP = SharedApp(
    name="m365-app",
    settings=M365AppSettings,
    check=_check_app,
    used_by=lambda settings: not settings.get("client_id"),
    own_fields=("redirect_uri",),
    consent_url=consent_url,
    consent_path="/admin/m365/consent",
)


def _tenant_switch(old: Mapping[str, Any], new: Mapping[str, Any], pinned: set[str]) -> str | None:
    before, after = normalised(old.get("tenant_id")), normalised(new.get("tenant_id"))
    if after != before and after not in pinned:
        return f"tenant_id {before!r} -> {after!r}"
    return None


SPEC = ConnectorSpec(
    kind="m365",
    family=ConnectorFamily.IDENTITY_PROVIDER,
    display_name="M365",
    settings=M365Settings,
    wording=AccessWording(
        granted=(
            "The account {username} is now enabled and has been added to the Global Admin role."
        ),
        # The first sentence is what PSA readers and tests look for; keep it word for word.
        revoked=(
            "Global Admin has been removed from the account {username} and the account has "
            "been deleted. Access tokens already issued to it can stay valid for up to about "
            "90 minutes: Microsoft 365 does not cut them short."
        ),
        privileged_group="an admin role",
    ),
    tenant_switch=_tenant_switch,
    check=_check,
    app=APP,
    vendor_docs="https://learn.microsoft.com/en-us/graph/api/overview",
)


def build(
    settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv, **extra: Any
) -> M365IdentityProvider:
    connection = M365Connection(
        tenant_id=settings["tenant_id"],
        client_id=settings["client_id"],
        client_secret=secrets.get("client_secret") or "",
        certificate_pem=settings.get("certificate_pem"),
        private_key_pem=secrets.get("private_key_pem"),
        authority_url=settings.get("authority_url") or CANONICAL_AUTHORITY,
        graph_url=settings.get("graph_url") or GRAPH_URL,
        domain=settings.get("domain"),
        credential=settings.get("m365_credential") or "password",
        pim=settings.get("m365_pim") or "auto",
    )
    options: dict[str, Any] = {
        "budget_s": env.graph_retry_budget_s,
        "backoff_base_s": env.graph_backoff_base_s,
        "new_assignment_wait_s": env.graph_new_assignment_wait_s,
        "egress": env.egress,
        **extra,
    }
    return M365IdentityProvider(connection, **options)
