"""Configuration use cases: customers, connections, the PSA, users; plus tickets and audit."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from pydantic import ValidationError as PydanticValidationError

from jitadmin.core import fields
from jitadmin.core.connectors import ConnectorFamily, ConnectorSpec, SharedApp
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    ConflictError,
    FieldProblem,
    UpstreamUnavailableError,
    ValidationFailedError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.ports import (
    AuditQuery,
    ConnectionRecord,
    Customer,
    StoredAuditEvent,
    Ticket,
    User,
)
from jitadmin.services import agents
from jitadmin.services.connection_checks import check_settings, run_test
from jitadmin.services.context import (
    ADMIN,
    AUDITOR,
    ROLES,
    ServiceContext,
    connection_of,
    require_customer,
    require_role,
    require_scope,
    require_unrestricted_admin,
    settings_context,
)
from jitadmin.services.tenancy import refuse_tenant_switch

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{1,199}$")
_hasher = PasswordHasher()

TOKEN_PURPOSE = "api-token"  # noqa: S105 (an HKDF label, not a secret)


def hash_token(ctx: ServiceContext, token: str) -> str:
    """What is stored for an API token: its HMAC under a key derived from the secret key.

    Tokens are 256-bit random values, so a fast keyed hash suffices; the key means someone who
    can write the database cannot make a token of their own (a bare SHA-256 row matches nothing).
    """
    return ctx.box.digests(TOKEN_PURPOSE, token)[0]


def _audit(
    ctx: ServiceContext, event: str, actor: str, customer: str | None = None, **data: Any
) -> AuditEvent:
    return AuditEvent(kind=event, actor=actor, at=ctx.clock.now(), customer=customer, data=data)


def create_customer(
    ctx: ServiceContext, actor: User, *, slug: str, name: str, psa_company_id: str,
    domain_prefix: str | None = None, max_duration_minutes: int | None = None,
) -> Customer:  # fmt: skip
    # A new customer lies outside every restricted admin's scope.
    require_unrestricted_admin(actor, "adding a customer")
    fields.check(
        {"slug": slug, "name": name, "psa_company_id": str(psa_company_id),
         "domain_prefix": domain_prefix}
    )  # fmt: skip
    if not _SLUG.match(slug):
        raise ValidationFailedError.single(
            "slug", "must be 2-63 lowercase letters, digits or dashes"
        )
    if not name.strip():
        raise ValidationFailedError.single("name", "is required")
    if not str(psa_company_id).strip():
        raise ValidationFailedError.single("psa_company_id", "is required")
    if max_duration_minutes is not None and not 1 <= max_duration_minutes <= 10080:
        raise ValidationFailedError.single("max_duration_minutes", "must be between 1 and 10080")
    customer = Customer(
        slug=slug, name=name.strip(), psa_company_id=str(psa_company_id).strip(),
        domain_prefix=(domain_prefix or slug).lower(), max_duration_minutes=max_duration_minutes,
    )  # fmt: skip
    with ctx.uow() as uow:
        if uow.customers.get(slug) is not None:
            raise ConflictError(f"customer {slug!r} exists already")
        uow.customers.add(customer, ctx.clock.now())
        uow.audit.append(_audit(ctx, "customer.created", actor.username, slug, name=customer.name))
        uow.commit()
    return customer


def list_customers(ctx: ServiceContext, actor: User) -> list[tuple[Customer, list[str]]]:
    with ctx.uow() as uow:
        return [
            (c, agents.offered(uow, c.slug)) for c in uow.customers.all() if actor.may_use(c.slug)
        ]


def split_settings(
    spec: ConnectorSpec | SharedApp, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings to store in plain text and the secrets to seal, checked by the spec."""
    fields.check_settings(body)
    missing = [f for f in spec.required_fields if not str(body.get(f) or "").strip()]
    if missing:
        raise ValidationFailedError.single(missing[0], "is required")
    # Names the kind does not have are dropped, never stored (a PUT /psa body may still carry
    # another kind's settings).
    given = {k: v for k, v in body.items() if v is not None and k in spec.fields}
    try:
        typed = spec.settings.model_validate(given).model_dump(exclude_none=True)
    except PydanticValidationError as error:
        raise ValidationFailedError([_setting_problem(item) for item in error.errors()]) from None
    public = {k: v for k, v in typed.items() if k not in spec.secret_fields}
    hidden = {k: typed[k] for k in spec.secret_fields if k in typed}
    return public, hidden


def _setting_problem(item: Any) -> FieldProblem:
    name = str(item["loc"][0]) if item.get("loc") else "settings"
    # Never the value itself: it may be a secret typed into the wrong field.
    return FieldProblem(name, str(item.get("msg", "is not valid")))


def put_connection(
    ctx: ServiceContext, actor: User, slug: str, kind: str, body: dict[str, Any]
) -> dict[str, Any]:
    require_role(actor, ADMIN)
    spec = ctx.connector(kind, ConnectorFamily.IDENTITY_PROVIDER, "kind")
    with ctx.uow() as uow:
        # A customer outside the admin's scope is unknown to it, whatever the body says.
        customer = require_customer(uow, actor, slug, "path")
        public, hidden = split_settings(spec, body)
        check_settings(ctx, spec, public, hidden)
        app = spec.app
        if app is not None and app.used_by(public) and uow.connections.get_app(app.name) is None:
            raise ValidationFailedError.single(
                "client_id", f"is required until the MSP app is set up (PUT /api/v1/{app.name})"
            )
        refuse_tenant_switch(uow, customer.slug, spec, public)
        sealed = ctx.box.seal(json.dumps(hidden), settings_context(customer.slug, kind, public))
        uow.connections.put(ConnectionRecord(kind, public, sealed, customer.slug), ctx.clock.now())
        uow.audit.append(
            _audit(ctx, "connection.saved", actor.username, slug, kind=kind, settings=public)
        )
        uow.commit()
    return public


def check_connection(ctx: ServiceContext, actor: User, slug: str, kind: str) -> list[str]:
    """The connection test's findings, or 503 with a fixed message (never the remote's words)."""
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        customer = require_customer(uow, actor, slug, "path")
        record = ctx.with_app(uow, connection_of(uow, customer, kind))
    return run_test(
        ctx, actor, lambda: ctx.identity_from(customer, record).check(),
        event="connection.tested", kind=kind, customer=slug,
    )  # fmt: skip


def put_psa(ctx: ServiceContext, actor: User, body: dict[str, Any]) -> dict[str, Any]:
    require_unrestricted_admin(actor, "the PSA connection (shared by every customer)")
    kind = str(body.get("kind") or "")
    spec = ctx.connector(kind, ConnectorFamily.TICKET_SYSTEM, "kind")
    public, hidden = split_settings(spec, {k: v for k, v in body.items() if k != "kind"})
    check_settings(ctx, spec, public, hidden)
    with ctx.uow() as uow:
        sealed = ctx.box.seal(json.dumps(hidden), settings_context(None, kind, public))
        uow.connections.put_psa(ConnectionRecord(kind, public, sealed), ctx.clock.now())
        uow.audit.append(_audit(ctx, "psa.saved", actor.username, kind=kind, settings=public))
        uow.commit()
    return {"kind": kind, **public}


def check_psa(ctx: ServiceContext, actor: User) -> dict[str, Any]:
    """Test the configured PSA connection: ``{"kind", "findings"}``, or 503 with the reason."""
    require_unrestricted_admin(actor, "the PSA connection (shared by every customer)")
    with ctx.uow() as uow:
        record = uow.connections.get_psa()
    if record is None:
        raise ValidationFailedError.single("kind", "no PSA is configured (PUT /psa)")
    findings = run_test(
        ctx, actor, lambda: ctx.ticket_systems(
            record.kind, record.settings, ctx.open_secrets(record)
        ).check(),
        event="psa.tested", kind=record.kind,
    )  # fmt: skip
    return {"kind": record.kind, "findings": findings}


def list_tickets(ctx: ServiceContext, actor: User, slug: str) -> list[Ticket]:
    """The ticket picker: the customer's open tickets, kept a few seconds per customer and user
    (services/psa_lookups) so the form is fast; a PSA call spends one of the user's lookups.
    The submit-time check (services.grants) never reads this cache."""
    with ctx.uow() as uow:
        customer = require_customer(uow, actor, slug, "path")
        system = ctx.tickets(uow)
    now = ctx.clock.now()
    cached = ctx.psa_lookups.cached(system, customer, actor, now)
    if cached is not None:
        return cached
    ctx.psa_lookups.spend(actor, now)
    try:
        tickets = system.list_open_tickets(customer.psa_company_id)
    except AdapterNotFoundError:
        tickets = []
    except AdapterError as error:
        raise UpstreamUnavailableError(f"the PSA did not answer: {error}") from error
    ctx.psa_lookups.remember(system, customer, actor, now, tickets)
    return tickets


@dataclass(frozen=True)
class NewUser:
    user: User
    password: str
    token: str


def add_user(
    ctx: ServiceContext, actor: User | None, *, username: str, role: str,
    customers: list[str] | None = None,
) -> NewUser:  # fmt: skip
    """Create a user with a password and an API token, shown this once. ``actor`` None: the CLI.

    An admin restricted to some customers creates only users restricted to some of those."""
    scope = None if customers is None else tuple(customers)
    if actor is not None:
        require_role(actor, ADMIN)
    fields.check({"username": username, "role": role, "customers": customers})
    if actor is not None:
        require_scope(actor, scope, "customers")
    if not _USERNAME.match(username):
        raise ValidationFailedError.single("username", "must be 2-200 letters, digits or . _ @ + -")
    if role not in ROLES:
        raise ValidationFailedError.single("role", f"must be one of {', '.join(ROLES)}")
    password = secrets.token_urlsafe(18)
    token = "jit_" + secrets.token_urlsafe(32)
    user = User(username, role, scope)
    with ctx.uow() as uow:
        if uow.users.get(username) is not None:
            raise ConflictError(f"user {username!r} exists already")
        for slug in customers or []:
            if uow.customers.get(slug) is None:
                raise ValidationFailedError.single("customers", f"no customer {slug!r}")
        now = ctx.clock.now()
        expires = now + timedelta(days=ctx.security.api_token_days)
        uow.users.add(user, _hasher.hash(password), hash_token(ctx, token), now, expires)
        uow.audit.append(
            _audit(
                ctx,
                "user.created",
                actor.username if actor else "system:cli",
                username=username,
                role=role,
            )
        )
        uow.commit()
    return NewUser(user, password, token)


def list_users(ctx: ServiceContext, actor: User) -> list[User]:
    """The users this admin manages: those whose customers all lie inside its own scope."""
    require_role(actor, ADMIN)
    with ctx.uow() as uow:
        return [u for u in uow.users.all() if actor.covers(u.customers)]


@dataclass(frozen=True)
class Caller:
    """Who is calling, and with which credential (``token:<id>``; never the secret)."""

    user: User
    credential: str


def authenticate_token(ctx: ServiceContext, token: str) -> Caller | None:
    with ctx.uow() as uow:
        # The current key's hash first; then each previous key's (tokens made before a rotation).
        for digest in ctx.box.digests(TOKEN_PURPOSE, token):
            if (found := uow.users.by_token_hash(digest, ctx.clock.now())) is not None:
                return Caller(found[0], f"token:{found[1]}")
    return None


def list_audit(
    ctx: ServiceContext, actor: User, grant_id: str | None = None, limit: int = 500,
    query: AuditQuery | None = None,
) -> list[StoredAuditEvent]:  # fmt: skip
    """The trail, filtered; someone restricted to some customers sees only their events."""
    require_role(actor, ADMIN, AUDITOR)
    query = query or AuditQuery(grant_id=grant_id)
    fields.check({"grant_id": query.grant_id, "customer": query.customer, "actor": query.actor})
    if actor.customers is not None:
        query = replace(query, customers=actor.customers)
    with ctx.uow() as uow:
        return uow.audit.search(query, limit)


def export_audit(
    ctx: ServiceContext, query: AuditQuery, batch: int = 1000
) -> Iterator[StoredAuditEvent]:
    """Every matching entry, oldest first, read in batches (for ``jitadmin audit export``)."""
    while True:
        with ctx.uow() as uow:
            page = uow.audit.export(query, batch)
        yield from page
        if len(page) < batch:
            return
        query = replace(query, after_seq=page[-1].seq)


def verify_audit(ctx: ServiceContext) -> tuple[int, int | None]:
    with ctx.uow() as uow:
        return uow.audit.verify()
