"""The MSP's shared app registration (``PUT /api/v1/m365-app``) and onboarding a customer
tenant through admin consent.

One multi-tenant app serves every customer: its client id and credential are entered once
(sealed like every secret); each customer's connection then needs only its tenant. An admin
picks a customer, follows the consent link to Entra, a customer admin consents there, and the
browser comes back with ``admin_consent=True&tenant=…`` (or ``error=…``). The ``state`` carried
through is signed (HMAC under the secret key), names the customer and the admin who asked, and
expires, so a redirect cannot be forged, replayed by another admin, or pointed at another
customer. On success the connection is saved with the tenant id (if the customer had none) and
the connection test runs at once.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jitadmin.core.connectors import ConnectorFamily, SharedApp
from jitadmin.core.errors import (
    AdapterError,
    ForbiddenError,
    UpstreamUnavailableError,
    ValidationFailedError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.core.naming import is_tenant_id, normalised
from jitadmin.ports import ConnectionRecord, Customer, User
from jitadmin.services import admin
from jitadmin.services.connection_checks import check_settings
from jitadmin.services.context import (
    ADMIN,
    ServiceContext,
    require_customer,
    require_role,
    require_unrestricted_admin,
    settings_context,
)

STATE_PURPOSE = "consent-state"
STATE_LIFETIME = timedelta(minutes=30)
_MAX_ERROR_TEXT = 500


def shared_app(ctx: ServiceContext, kind: str) -> SharedApp:
    spec = ctx.connector(kind, ConnectorFamily.IDENTITY_PROVIDER, "kind")
    if spec.app is None:
        raise ValidationFailedError.single("kind", f"{kind} has no shared app")
    return spec.app


def put_app(ctx: ServiceContext, actor: User, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Save the MSP app (every customer relying on it uses the new credential at once)."""
    require_unrestricted_admin(actor, "the MSP app (shared by every customer)")
    app = shared_app(ctx, kind)
    public, hidden = admin.split_settings(app, body)
    check_settings(ctx, app, public, hidden)
    with ctx.uow() as uow:
        sealed = ctx.box.seal(json.dumps(hidden), settings_context(None, app.name, public))
        uow.connections.put_app(ConnectionRecord(app.name, public, sealed), ctx.clock.now())
        uow.audit.append(
            AuditEvent(
                kind="app.saved", actor=actor.username, at=ctx.clock.now(),
                data={"app": app.name, "settings": public},
            )
        )  # fmt: skip
        uow.commit()
    return public


def get_app(ctx: ServiceContext, actor: User, kind: str) -> dict[str, Any] | None:
    """The app's settings (never its secrets), or None when it is not set up."""
    require_unrestricted_admin(actor, "the MSP app (shared by every customer)")
    app = shared_app(ctx, kind)
    with ctx.uow() as uow:
        record = uow.connections.get_app(app.name)
    return None if record is None else dict(record.settings)


@dataclass(frozen=True)
class ConsentLink:
    url: str
    state: str
    tenant: str
    redirect_uri: str
    expires_at: str


def consent_link(
    ctx: ServiceContext, actor: User, slug: str, kind: str, default_redirect: str
) -> ConsentLink:
    """The admin-consent URL for ``slug``'s tenant (``organizations`` when the customer has no
    tenant yet: the consenting admin's own tenant is then the one)."""
    require_role(actor, ADMIN)
    app = shared_app(ctx, kind)
    with ctx.uow() as uow:
        customer = require_customer(uow, actor, slug, "path")
        record = uow.connections.get_app(app.name)
        connection = uow.connections.get(customer.slug, kind)
    if record is None or app.consent_url is None:
        raise ValidationFailedError.single(
            "client_id", f"the MSP app is not set up (PUT /api/v1/{app.name})"
        )
    if connection is not None and not app.used_by(connection.settings):
        raise ValidationFailedError.single(
            "client_id",
            f"the {kind} connection of {slug} has an app of its own; consent is given to that app",
        )
    tenant = str(connection.settings["tenant_id"]) if connection is not None else "organizations"
    redirect = str(record.settings.get("redirect_uri") or default_redirect)
    expires = ctx.clock.now() + STATE_LIFETIME
    state = _sign(ctx, {"c": customer.slug, "k": kind, "u": actor.username,
                        "e": int(expires.timestamp()), "n": secrets.token_urlsafe(8)})  # fmt: skip
    url = app.consent_url(record.settings, tenant, redirect, state)
    return ConsentLink(url, state, tenant, redirect, expires.isoformat())


@dataclass
class ConsentOutcome:
    customer: str
    ok: bool
    tenant: str | None = None
    findings: list[str] = field(default_factory=list)
    error: str | None = None


def complete_consent(ctx: ServiceContext, actor: User, params: dict[str, str]) -> ConsentOutcome:
    """Handle Entra's redirect back: verify ``state``, record the outcome, test the connection."""
    require_role(actor, ADMIN)
    claims = _verify(ctx, actor, params.get("state") or "")
    slug, kind = str(claims["c"]), str(claims["k"])
    with ctx.uow() as uow:
        customer = require_customer(uow, actor, slug, "path")
        current = uow.connections.get(customer.slug, kind)
    error = (params.get("error") or "").strip()
    if error or str(params.get("admin_consent", "")).lower() != "true":
        described = (params.get("error_description") or "").strip()
        message = f"{error or 'no consent'}: {described}"[:_MAX_ERROR_TEXT].rstrip(": ")
        _audit(ctx, actor, "connection.consent_refused", slug, kind=kind, error=error[:64])
        return ConsentOutcome(slug, False, error=f"Admin consent was not granted ({message}).")
    tenant = (params.get("tenant") or "").strip().lower()
    if not is_tenant_id(tenant):
        raise ValidationFailedError.single("tenant", "must be the tenant id Entra sent back")
    configured = normalised(current.settings.get("tenant_id")) if current else ""
    if current is None:
        admin.put_connection(ctx, actor, slug, kind, {"tenant_id": tenant})
    elif configured != tenant and _reached(ctx, customer, kind, configured) not in (None, tenant):
        _audit(ctx, actor, "connection.consent_refused", slug, kind=kind, error="other_tenant")
        return ConsentOutcome(
            slug, False, tenant,
            error=(f"Consent was granted in tenant {tenant}, but the connection of {slug} is "
                   f"for tenant {current.settings.get('tenant_id')}; nothing was changed."),
        )  # fmt: skip
    _audit(ctx, actor, "connection.consented", slug, kind=kind, tenant=tenant)
    try:
        findings = admin.check_connection(ctx, actor, slug, kind)
    except UpstreamUnavailableError as failure:
        return ConsentOutcome(slug, False, tenant, error=str(failure))
    return ConsentOutcome(slug, True, tenant, findings)


def _reached(ctx: ServiceContext, customer: Customer, kind: str, configured: str) -> str | None:
    """The tenant GUID the connection reaches: the configured one, or what a domain name
    resolves to (None when that cannot be told now; the connection test then says why)."""
    if len(configured) == 36 and configured.count("-") == 4:
        return configured
    try:
        with ctx.uow() as uow:
            identity = ctx.identity_for(uow, customer, kind)
        return identity.tenant_id().lower()
    except AdapterError:
        return None


def _sign(ctx: ServiceContext, claims: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
    text = body.decode("ascii").rstrip("=")
    return f"{text}.{ctx.box.digests(STATE_PURPOSE, text)[0]}"


def _verify(ctx: ServiceContext, actor: User, state: str) -> dict[str, Any]:
    text, _, mac = state.partition(".")
    if not text or not any(
        hmac.compare_digest(mac, d) for d in ctx.box.digests(STATE_PURPOSE, text)
    ):
        raise ValidationFailedError.single("state", "is not a consent link jitadmin made")
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    if claims.get("u") != actor.username:
        raise ForbiddenError("this consent link was made for another admin")
    if int(claims.get("e", 0)) < ctx.clock.now().timestamp():
        raise ValidationFailedError.single("state", "has expired; make a new consent link")
    return claims


def _audit(ctx: ServiceContext, actor: User, event: str, customer: str, **data: Any) -> None:
    with ctx.uow() as uow:
        uow.audit.append(
            AuditEvent(kind=event, actor=actor.username, at=ctx.clock.now(), customer=customer,
                       data=data)
        )  # fmt: skip
        uow.commit()
