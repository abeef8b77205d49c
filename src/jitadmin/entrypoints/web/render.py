"""Jinja2 rendering and the headers every console page carries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import Response

from jitadmin.connectors import REGISTRY
from jitadmin.core.clock import iso, utc
from jitadmin.core.connectors import ConnectorFamily
from jitadmin.core.grant import FINISHED, REVOCABLE, values

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


class _IdentityProviderLabels(Mapping[str, str]):
    """Each identity provider's display name, read from the connector registry when used."""

    def _current(self) -> dict[str, str]:
        family = ConnectorFamily.IDENTITY_PROVIDER
        return {s.kind: s.display_name for s in REGISTRY.catalog if s.family is family}

    def __getitem__(self, kind: str) -> str:
        return self._current()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


IDP_LABELS = _IdentityProviderLabels()
STATE_LABELS = {
    "requested": "Requested",
    "pending_approval": "Pending approval",
    "approved": "Approved",
    "denied": "Denied",
    "rejected": "Rejected",
    "cancelled": "Cancelled",
    "expired": "Expired without approval",
    "provisioning": "Provisioning",
    "active": "Active",
    "failed": "Failed",
    "revoking": "Revoking",
    "revoke_failed": "Revocation failing, retrying",
    "revoked": "Revoked",
}
FINAL_STATES = values(FINISHED)
REVOCABLE_STATES = values(REVOCABLE)

# Only our own files, no inline script or style: a stored XSS has nothing to run with.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages can carry a one-time password: never keep them in any cache or history snapshot.
    "Cache-Control": "no-store",
}


def when(value: datetime | None) -> str:
    return "" if value is None else utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["iso"] = iso
    env.globals.update(
        IDP_LABELS=IDP_LABELS, STATE_LABELS=STATE_LABELS, FINAL_STATES=FINAL_STATES,
        REVOCABLE_STATES=REVOCABLE_STATES, role_text=role_text,
    )  # fmt: skip
    return env


# A grant whose Global Administrator is a PIM assignment with its own end in the tenant.
PIM_TEXT = (
    "Global Administrator also ends in the tenant itself (PIM), shortly after this grant, "
    "even if jitadmin cannot reach the tenant then."
)


def role_text(account: Mapping[str, Any]) -> str | None:
    """What the grant page says of how Global Administrator was given (M365)."""
    if account.get("role_assignment") == "pim":
        return PIM_TEXT
    notice = account.get("role_notice")
    return notice if isinstance(notice, str) else None


ENV = _environment()


def harden(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


# Which navigation entry a page belongs to (aria-current).
SECTIONS = {
    "form.html": "request",
    "result.html": "grants",
    "grants.html": "grants",
    "grant.html": "grants",
    "approvals.html": "approvals",
    "admin_customers.html": "customers",
    "admin_psa.html": "psa",
    "admin_users.html": "users",
    "admin_tokens.html": "tokens",
    "admin_notifications.html": "notifications",
    "admin_app.html": "app",
}


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("visitor", None)
    context.setdefault("title", "jitadmin")
    context.setdefault("active", SECTIONS.get(template, ""))
    html = ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)
