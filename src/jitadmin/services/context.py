"""What every use case needs, bundled once by the composition root (``jitadmin.wiring``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from jitadmin.core import fields
from jitadmin.core.connectors import ConnectorCatalog, ConnectorFamily, ConnectorSpec
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import (
    AdapterError,
    ConnectionSettingsAlteredError,
    ForbiddenError,
    MisconfiguredError,
    NotFoundError,
    ValidationFailedError,
)
from jitadmin.core.grant import WorkerTuning
from jitadmin.core.retry import RetryPolicy
from jitadmin.ports import (
    Clock,
    ConnectionRecord,
    Customer,
    HostResolver,
    IdentityProvider,
    IdentityProviderFactory,
    Mailer,
    Metrics,
    NoMailer,
    NoMetrics,
    NoNotificationSender,
    NotificationSender,
    SecretBox,
    TicketSystem,
    TicketSystemFactory,
    UnitOfWork,
    UnitOfWorkFactory,
    User,
    no_resolver,
)
from jitadmin.services.psa_lookups import PsaLookups

log = logging.getLogger("jitadmin")

ADMIN = "admin"
TECHNICIAN = "technician"
APPROVER = "approver"
AUDITOR = "auditor"
ROLES = (ADMIN, TECHNICIAN, APPROVER, AUDITOR)


@dataclass(frozen=True)
class SecurityTuning:
    reveal_limit_per_hour: int = 10
    # All admins together: a rogue admin cannot beat the per-admin limit with more admins.
    reveal_limit_global_per_hour: int = 30
    signin_failures_per_user: int = 5
    signin_failures_per_client: int = 20
    signin_lockout_minutes: float = 15.0
    # Failed sign-ins of everyone together per lockout window; beyond it, password sign-in is
    # closed to all until the window frees up (each failure is a row; a flood writes no more).
    signin_failures_global: int = 100
    api_token_days: float = 90.0
    # Roles whose local sign-in needs a second factor (TOTP, or a recovery code).
    totp_required_roles: tuple[str, ...] = ("admin",)
    # How many customers one user may hold live grants in at once (409 beyond).
    max_active_grants_per_user: int = 3


@dataclass
class ServiceContext:
    uow: UnitOfWorkFactory
    clock: Clock
    box: SecretBox
    identity_providers: IdentityProviderFactory
    ticket_systems: TicketSystemFactory
    # Every connector kind jitadmin was built with (jitadmin.connectors fills it).
    connectors: ConnectorCatalog = field(default_factory=ConnectorCatalog)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    tuning: WorkerTuning = field(default_factory=WorkerTuning)
    security: SecurityTuning = field(default_factory=SecurityTuning)
    # Called after a commit that created due work, so an in-process worker wakes at once.
    wake: Callable[[], None] = lambda: None
    metrics: Metrics = field(default_factory=NoMetrics)
    # Each user's budget of PSA calls and the ticket picker's cache (services/psa_lookups).
    psa_lookups: PsaLookups = field(default_factory=PsaLookups)
    # Which addresses connection settings may point at (checked again on every connection).
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    # Resolves the host names in connection settings when they are saved (wiring: DNS).
    resolve: HostResolver = no_resolver
    # Notifications: webhook/Slack/Teams over HTTP, email over SMTP, and the console's public
    # address for the links they carry (JITADMIN_PUBLIC_URL; empty: links are paths).
    notifier: NotificationSender = field(default_factory=NoNotificationSender)
    mailer: Mailer = field(default_factory=NoMailer)
    public_url: str = ""
    # The credential acting in this request ("token:<id>", "session:<handle>"); None for the
    # worker and the CLI. Set by ``acting``; every audit event written through ``uow`` names it.
    credential: str | None = None
    # Called when a job for an on-prem agent is written in this process, so a waiting long poll
    # answers at once (a job of another process is seen on the poll's next check, within 1 s).
    agent_job_listeners: list[Callable[[], None]] = field(default_factory=list)
    # How long an agent holds a job without reporting; a dead agent's job then goes to another.
    agent_job_lease_s: float = 60.0

    def acting(self, credential: str | None) -> ServiceContext:
        """This context for one request made with ``credential``."""
        if credential is None or credential == self.credential:
            return self
        base, acting = self.uow, credential

        def bound(credential: str | None = None) -> UnitOfWork:
            return base(credential or acting)

        return replace(self, uow=bound, credential=credential)

    def connector(self, kind: str, family: ConnectorFamily, field_name: str) -> ConnectorSpec:
        """The spec of connector ``kind`` of ``family``; a 422 on ``field_name`` otherwise."""
        spec = self.connectors.get(kind, family)
        if spec is None:
            known = ", ".join(self.connectors.kinds(family))
            raise ValidationFailedError.single(field_name, f"must be one of {known}")
        return spec

    # -- connections, decrypted only here and only for the call at hand -------------------

    def open_secrets(self, record: ConnectionRecord) -> dict[str, Any]:
        """The connection's secrets, only if its settings are the ones they were sealed with."""
        context = settings_context(record.customer, record.kind, record.settings)
        try:
            opened = self.box.open(record.secret_sealed, context)
        except ValueError as error:  # SecretBoxError: another key, another row, edited settings
            what = f"{record.kind} connection" + (
                f" of {record.customer}" if record.customer else ""
            )
            raise ConnectionSettingsAlteredError(what) from error
        loaded: dict[str, Any] = json.loads(opened)
        return loaded

    def identity_for(self, uow: UnitOfWork, customer: Customer, kind: str) -> IdentityProvider:
        return self.identity_from(customer, self.with_app(uow, connection_of(uow, customer, kind)))

    def identity_from(self, customer: Customer, record: ConnectionRecord) -> IdentityProvider:
        """The identity provider of a connection record already read in this transaction
        (``connection_of``: with the shared app it relies on, if any)."""
        settings, secrets = self.effective_settings(record)
        return self.identity_providers(customer, record.kind, settings, secrets)

    def effective_settings(self, record: ConnectionRecord) -> tuple[dict[str, Any], dict[str, Any]]:
        """(settings, secrets) the adapter is built from: the connection's own, on top of the
        shared app's client id and credential when the connection leaves them out."""
        settings, secrets = dict(record.settings), self.open_secrets(record)
        spec = self.connectors.get(record.kind)
        app = spec.app if spec is not None else None
        if app is None or not app.used_by(record.settings):
            return settings, secrets
        if record.app is None:
            raise MisconfiguredError(
                f"the {record.kind} connection of {record.customer} uses the MSP app, which is "
                f"not configured (PUT /api/v1/{app.name})"
            )
        shared = {k: v for k, v in record.app.settings.items() if k not in app.own_fields}
        return {**shared, **settings}, {**self.open_secrets(record.app), **secrets}

    def with_app(self, uow: UnitOfWork, record: ConnectionRecord) -> ConnectionRecord:
        """``record`` with the shared app it relies on attached (read in this transaction)."""
        spec = self.connectors.get(record.kind)
        if spec is None or spec.app is None or not spec.app.used_by(record.settings):
            return record
        return replace(record, app=uow.connections.get_app(spec.app.name))

    def tickets(self, uow: UnitOfWork) -> TicketSystem:
        record = uow.connections.get_psa()
        if record is None:
            raise ValidationFailedError.single("ticket_id", "no PSA is configured (PUT /psa)")
        return self.ticket_systems(record.kind, record.settings, self.open_secrets(record))


def error_kind(error: Exception) -> str:
    """A metric label for a failure: ``TransientError`` → ``transient``; others ``unexpected``."""
    if isinstance(error, AdapterError):
        name = type(error).__name__.removesuffix("Error")
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return "unexpected"


def connection_of(uow: UnitOfWork, customer: Customer, kind: str) -> ConnectionRecord:
    """The customer's ``kind`` connection; a 422 naming the identity provider if there is none."""
    record = uow.connections.get(customer.slug, kind)
    if record is None:
        raise ValidationFailedError.single(
            "identity_provider", f"{kind} is not configured for customer {customer.slug}"
        )
    return record


def connection_context(customer: str | None, kind: str) -> str:
    return f"connection:{customer or '*'}:{kind}"


def settings_context(customer: str | None, kind: str, settings: dict[str, Any]) -> str:
    """The associated data of a connection's sealed secret: the row and every plaintext setting.

    Canonical JSON (sorted keys, no spaces), so it reads the same from either database; a
    setting edited in the database (a ``base_url`` pointed elsewhere) no longer opens the secret.
    """
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return f"{connection_context(customer, kind)}|settings:{canonical}"


def require_role(user: User, *roles: str) -> None:
    if user.role not in roles:
        raise ForbiddenError(f"role {user.role!r} may not do this (needs {' or '.join(roles)})")


def require_unrestricted_admin(actor: User, what: str) -> None:
    """Global settings (the PSA, keys, customers, unrestricted users) need an admin whose
    scope is every customer; an admin restricted to some customers manages only those."""
    require_role(actor, ADMIN)
    if actor.customers is not None:
        raise ForbiddenError(f"{what} needs an unrestricted admin; you manage only some customers")


def require_scope(actor: User, scope: tuple[str, ...] | None, field_name: str) -> None:
    """``scope`` (a user's customers; None = every customer) must lie inside the actor's."""
    if actor.covers(scope):
        return
    if scope is None:
        raise ForbiddenError(
            f"{field_name}: you manage only some customers, so a user you create or change "
            "must be restricted to some of them (an unrestricted user needs an unrestricted admin)"
        )
    outside = sorted(set(scope) - set(actor.customers or ()))
    raise ForbiddenError(f"{field_name}: outside the customers you manage: {', '.join(outside)}")


def require_customer(
    uow: UnitOfWork, user: User, slug: str, field_name: str = "customer"
) -> Customer:
    fields.check({"slug" if field_name == "path" else field_name: slug})
    customer = uow.customers.get(slug)
    if customer is None or not user.may_use(slug):
        if field_name == "path":
            raise NotFoundError("customer", slug)
        raise ValidationFailedError.single(field_name, f"no customer {slug!r}")
    return customer
