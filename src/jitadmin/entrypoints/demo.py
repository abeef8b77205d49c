"""`jitadmin demo`: the product on embedded defaults, seeded against in-process emulators."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from jitadmin.connectors import REGISTRY
from jitadmin.db.files import private_file, write_private
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.ports import User
from jitadmin.services import admin, second_factor
from jitadmin.wiring import App

SYSTEM_ADMIN = User("system:demo", "admin")
# The demo's emulators (and `make dc`'s DC) listen on loopback: the demo's egress policy lets it
# reach them, besides whatever JITADMIN_EGRESS_ALLOW lists.
DEMO_EGRESS_ALLOW = ("127.0.0.0/8", "::1", "localhost")


def egress_allow(host: str, configured: list[str]) -> list[str]:
    return list(dict.fromkeys([*DEMO_EGRESS_ALLOW, host, *configured]))


def load_or_create_key(data_dir: Path) -> str:
    """The demo's own secret key, kept beside its database (0600)."""
    path = data_dir / "secret.key"
    if path.exists():
        return private_file(path).read_text().strip()  # tightened if it was wider
    key = secrets.token_urlsafe(48)
    write_private(path, key)
    return key


def seed(app: App, world: EmulatorWorld, *, admin_totp: bool = False) -> dict[str, dict[str, str]]:
    """Customers, a connection for each emulated identity provider, the PSA, an admin and a
    technician. ``admin_totp``: the admin signs in with a second factor too (its secret is
    returned as ``totp_secret``), as ``JITADMIN_TOTP_REQUIRED_ROLES`` asks by default."""
    ctx = app.ctx
    for customer in world.customers:
        admin.create_customer(
            ctx, SYSTEM_ADMIN, slug=customer.slug, name=customer.name,
            psa_company_id=str(customer.psa_company_id), domain_prefix=customer.slug,
        )  # fmt: skip
        for connector in REGISTRY:
            if connector.emulated is not None:
                settings = connector.emulated(world, customer)
                admin.put_connection(ctx, SYSTEM_ADMIN, customer.slug, connector.kind, settings)
    psa = {k: v for k, v in world.psa_settings().items() if k != "admin_url"}
    admin.put_psa(ctx, SYSTEM_ADMIN, psa)
    users: dict[str, dict[str, str]] = {}
    for role, name in (("admin", "admin"), ("technician", "example.user@msp.example")):
        new = admin.add_user(ctx, None, username=name, role=role)
        users[role] = {"username": name, "password": new.password, "token": new.token}
    if admin_totp:
        users["admin"]["totp_secret"] = second_factor.enrol(ctx, "admin").secret
    return users


def demo_document(
    app: App, url: str, users: dict[str, Any], world: EmulatorWorld
) -> dict[str, Any]:
    return {
        "url": url,
        "database_url": app.settings.effective_database_url,
        "secret_key": app.settings.require_secret_key(),
        "users": users,
        "emulators": world.describe(),
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    write_private(path, json.dumps(document, indent=2) + "\n")
