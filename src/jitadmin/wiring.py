"""Composition root: Settings → database, secret box, clock, adapters → services and worker."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from jitadmin.adapters.clock import SystemClock
from jitadmin.adapters.egress import resolve
from jitadmin.adapters.notify.http import HttpNotificationSender
from jitadmin.adapters.notify.smtp import SmtpMailer
from jitadmin.adapters.oidc import OidcClient, OidcClientConfig
from jitadmin.adapters.prometheus_metrics import PrometheusMetrics
from jitadmin.adapters.secretbox import AesGcmSecretBox
from jitadmin.connectors import REGISTRY, ConnectorRegistry
from jitadmin.core.connectors import AdapterEnv
from jitadmin.core.events import AuditKeys
from jitadmin.core.grant import WorkerTuning
from jitadmin.core.retry import RetryPolicy
from jitadmin.db import migrate
from jitadmin.db.files import private_dir
from jitadmin.db.session import Database
from jitadmin.ports import Clock, Customer, IdentityProvider, TicketSystem
from jitadmin.services import legacy
from jitadmin.services.agent_jobs import AgentJobs
from jitadmin.services.context import ROLES, SecurityTuning, ServiceContext
from jitadmin.services.oidc_signin import OidcPolicy
from jitadmin.services.psa_lookups import PsaLookups
from jitadmin.settings import Settings


def _totp_roles(raw: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in raw.split(",") if r.strip())
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(
            f"JITADMIN_TOTP_REQUIRED_ROLES: unknown role {unknown[0]!r} "
            f"(roles: {', '.join(ROLES)}; empty: none)"
        )
    return roles


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class AdapterCache:
    """One adapter per connection version, so token caches and HTTP pools are reused."""

    env: AdapterEnv = field(default_factory=AdapterEnv)
    registry: ConnectorRegistry = REGISTRY
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _items: dict[str, Any] = field(default_factory=dict)

    def _cached(self, key: str, build: Any) -> Any:
        with self._lock:
            if key not in self._items:
                self._items[key] = build()
            return self._items[key]

    def identity(
        self, customer: Customer, kind: str, settings: dict[str, Any], secrets: dict[str, Any]
    ) -> IdentityProvider:
        key = _fingerprint("idp", customer, kind, settings, secrets)
        env = replace(self.env, domain_prefix=customer.domain_prefix, customer=customer.slug)
        provider: IdentityProvider = self._cached(
            key, lambda: self.registry.identity_provider(kind, settings, secrets, env)
        )
        return provider

    def tickets(self, kind: str, settings: dict[str, Any], secrets: dict[str, Any]) -> TicketSystem:
        key = _fingerprint("psa", kind, settings, secrets)
        system: TicketSystem = self._cached(
            key, lambda: self.registry.ticket_system(kind, settings, secrets, self.env)
        )
        return system


@dataclass(frozen=True)
class OidcSetup:
    """OpenID Connect sign-in as configured: the relying party, the claim rules, the button."""

    client: OidcClient
    policy: OidcPolicy
    display_name: str


def oidc_setup(settings: Settings) -> OidcSetup | None:
    if not settings.oidc_issuer:
        return None
    for claim, role in settings.oidc_role_map.items():
        if role not in ROLES:
            raise ValueError(
                f"JITADMIN_OIDC_ROLE_MAP: {claim!r} maps to unknown role {role!r} "
                f"(roles: {', '.join(ROLES)})"
            )
    secret = settings.oidc_client_secret
    assert secret is not None  # Settings refuses an issuer without a secret
    client = OidcClient(
        OidcClientConfig(settings.oidc_issuer, settings.oidc_client_id, secret.get_secret_value())
    )
    policy = OidcPolicy(
        issuer=settings.oidc_issuer,
        role_map=dict(settings.oidc_role_map),
        roles_claim=settings.oidc_roles_claim,
        customers_claim=settings.oidc_customers_claim,
        require_mfa=settings.oidc_require_mfa,
    )
    return OidcSetup(client, policy, settings.oidc_display_name)


@dataclass
class App:
    settings: Settings
    database: Database
    ctx: ServiceContext
    # This process's event metrics (the API's /metrics renders them with the database gauges).
    metrics: PrometheusMetrics = field(default_factory=PrometheusMetrics)
    oidc: OidcSetup | None = None

    def close(self) -> None:
        if self.oidc is not None:
            self.oidc.client.close()
        self.database.dispose()


def build(settings: Settings, *, clock: Clock | None = None, upgrade: bool = True) -> App:
    oidc = oidc_setup(settings)  # a bad role map stops here, before anything is touched
    private_dir(settings.data_dir)
    database = Database(
        settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
    )
    before = migrate.upgrade(database.engine) if upgrade else None
    previous = tuple(k.get_secret_value() for k in settings.previous_secret_keys)
    box = AesGcmSecretBox(settings.require_secret_key(), previous)
    database.audit_keys = AuditKeys(
        box.mac_keys(legacy.AUDIT_CHAIN), box.mac_keys(legacy.AUDIT_HEAD)
    )
    egress = settings.egress_policy
    cache = AdapterCache(
        AdapterEnv(
            egress=egress,
            graph_retry_budget_s=settings.graph_retry_budget_seconds,
            graph_backoff_base_s=settings.graph_backoff_base_seconds,
            graph_new_assignment_wait_s=settings.graph_new_assignment_wait_seconds,
        )
    )
    ctx = ServiceContext(
        uow=database.uow,
        clock=clock or SystemClock(),
        box=box,
        connectors=cache.registry.catalog,
        identity_providers=cache.identity,
        ticket_systems=cache.tickets,
        retry=RetryPolicy(base_s=settings.retry_base_seconds, cap_s=settings.retry_cap_seconds),
        tuning=WorkerTuning(
            provision_max_attempts=settings.provision_max_attempts,
            revoke_max_attempts=settings.revoke_max_attempts,
            revoke_failed_interval_s=settings.revoke_failed_interval_seconds,
        ),
        security=SecurityTuning(
            reveal_limit_per_hour=settings.reveal_limit_per_hour,
            reveal_limit_global_per_hour=settings.reveal_limit_global_per_hour,
            signin_failures_per_user=settings.signin_failures_per_user,
            signin_failures_per_client=settings.signin_failures_per_client,
            signin_lockout_minutes=settings.signin_lockout_minutes,
            totp_required_roles=_totp_roles(settings.totp_required_roles),
            signin_failures_global=settings.signin_failures_global,
            api_token_days=settings.api_token_days,
            max_active_grants_per_user=settings.max_active_grants_per_user,
        ),
        egress=egress,
        resolve=resolve,
        notifier=HttpNotificationSender(egress),
        public_url=settings.public_url,
        agent_job_lease_s=settings.agent_job_lease_seconds,
    )
    # The agent-backed identity provider queues its steps through the services (ports only).
    cache.env = replace(cache.env, agent_jobs=AgentJobs(ctx))
    if settings.smtp_host:
        password = settings.smtp_password
        ctx.mailer = SmtpMailer(
            settings.smtp_host, settings.smtp_port, settings.smtp_from,
            username=settings.smtp_username,
            password=None if password is None else password.get_secret_value(),
            starttls=settings.smtp_starttls,
        )  # fmt: skip
    ctx.psa_lookups = PsaLookups(
        per_minute=settings.psa_lookups_per_minute, cache_ttl_s=settings.psa_ticket_cache_seconds
    )
    metrics = PrometheusMetrics()
    ctx.metrics = metrics
    if migrate.predates_keyed_hashes(before):
        legacy.adopt(ctx)
    return App(
        settings=settings, database=database, ctx=ctx, metrics=metrics,
        oidc=oidc,
    )  # fmt: skip
