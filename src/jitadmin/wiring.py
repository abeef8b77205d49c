"""Composition root: Settings → database, secret box, clock, adapters → services and worker."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider, AdConnection
from jitadmin.adapters.clock import SystemClock
from jitadmin.adapters.egress import resolve
from jitadmin.adapters.m365.provider import M365Connection, M365IdentityProvider
from jitadmin.adapters.prometheus_metrics import PrometheusMetrics
from jitadmin.adapters.psa.autotask.adapter import AutotaskTickets
from jitadmin.adapters.psa.connectwise.adapter import ConnectWiseTickets
from jitadmin.adapters.psa.halopsa.adapter import HaloTickets
from jitadmin.adapters.secretbox import AesGcmSecretBox
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import ValidationFailedError
from jitadmin.core.events import AuditKeys
from jitadmin.core.grant import WorkerTuning
from jitadmin.core.retry import RetryPolicy
from jitadmin.db import migrate
from jitadmin.db.files import private_dir
from jitadmin.db.session import Database
from jitadmin.ports import Clock, Customer, IdentityProvider, TicketSystem
from jitadmin.services import legacy
from jitadmin.services.context import SecurityTuning, ServiceContext
from jitadmin.services.psa_lookups import PsaLookups
from jitadmin.settings import Settings


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class AdapterCache:
    """One adapter per connection version, so token caches and HTTP pools are reused."""

    graph_retry_budget_s: float = 60.0
    graph_backoff_base_s: float = 1.0
    egress: EgressPolicy = field(default_factory=EgressPolicy)
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
        if kind == "m365":
            connection = M365Connection(
                tenant_id=settings["tenant_id"],
                client_id=settings["client_id"],
                client_secret=secrets["client_secret"],
                authority_url=settings.get("authority_url") or "https://login.microsoftonline.com",
                graph_url=settings.get("graph_url") or "https://graph.microsoft.com/v1.0",
                domain=settings.get("domain"),
            )
            provider: IdentityProvider = self._cached(
                key,
                lambda: M365IdentityProvider(
                    connection,
                    budget_s=self.graph_retry_budget_s,
                    backoff_base_s=self.graph_backoff_base_s,
                    egress=self.egress,
                ),
            )
            return provider
        if kind == "ad":
            ad = AdConnection(
                url=settings["url"],
                bind_user=settings["bind_user"],
                bind_password=secrets["bind_password"],
                ca_pem=settings.get("ca_pem"),
                base_dn=settings.get("base_dn"),
                ou=settings.get("ou"),
                domain_prefix=customer.domain_prefix,
            )
            # Small timeouts: an unreachable DC fails fast and the worker's backoff retries.
            directory: IdentityProvider = self._cached(
                key,
                lambda: ActiveDirectoryIdentityProvider(
                    ad, connect_timeout_s=5.0, receive_timeout_s=10, egress=self.egress
                ),
            )
            return directory
        raise ValidationFailedError.single("identity_provider", f"{kind} is not supported yet")

    def tickets(self, kind: str, settings: dict[str, Any], secrets: dict[str, Any]) -> TicketSystem:
        key = _fingerprint("psa", kind, settings, secrets)
        system: TicketSystem = self._cached(
            key, lambda: _ticket_system(kind, settings, secrets, self.egress)
        )
        return system


def _ticket_system(
    kind: str, settings: dict[str, Any], secrets: dict[str, Any], egress: EgressPolicy
) -> TicketSystem:
    """The PSA adapter for ``kind`` (settings names as in the PUT /psa body, a public interface)."""
    if kind == "connectwise":
        return ConnectWiseTickets(
            settings["base_url"],
            settings["company_id"],
            settings["public_key"],
            secrets["private_key"],
            settings["client_id"],
            egress=egress,
        )
    if kind == "autotask":
        return AutotaskTickets(
            settings["base_url"],
            settings["username"],
            secrets["secret"],
            settings["integration_code"],
            note_type=settings.get("note_type") or 1,
            publish=settings.get("publish") or 2,
            egress=egress,
        )
    if kind == "halopsa":
        return HaloTickets(
            settings["base_url"],
            settings["auth_url"],
            settings["client_id"],
            secrets["client_secret"],
            settings.get("tenant"),
            outcome_id=settings.get("outcome_id") or 7,
            egress=egress,
        )
    raise ValidationFailedError.single("kind", f"PSA {kind} is not supported yet")


@dataclass
class App:
    settings: Settings
    database: Database
    ctx: ServiceContext
    # This process's event metrics (the API's /metrics renders them with the database gauges).
    metrics: PrometheusMetrics = field(default_factory=PrometheusMetrics)

    def close(self) -> None:
        self.database.dispose()


def build(settings: Settings, *, clock: Clock | None = None, upgrade: bool = True) -> App:
    private_dir(settings.data_dir)
    database = Database(settings.effective_database_url)
    before = migrate.upgrade(database.engine) if upgrade else None
    previous = tuple(k.get_secret_value() for k in settings.previous_secret_keys)
    box = AesGcmSecretBox(settings.require_secret_key(), previous)
    database.audit_keys = AuditKeys(
        box.mac_keys(legacy.AUDIT_CHAIN), box.mac_keys(legacy.AUDIT_HEAD)
    )
    egress = settings.egress_policy
    cache = AdapterCache(
        graph_retry_budget_s=settings.graph_retry_budget_seconds,
        graph_backoff_base_s=settings.graph_backoff_base_seconds,
        egress=egress,
    )
    ctx = ServiceContext(
        uow=database.uow,
        clock=clock or SystemClock(),
        box=box,
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
            signin_failures_global=settings.signin_failures_global,
            api_token_days=settings.api_token_days,
        ),
        egress=egress,
        resolve=resolve,
    )
    ctx.psa_lookups = PsaLookups(
        per_minute=settings.psa_lookups_per_minute, cache_ttl_s=settings.psa_ticket_cache_seconds
    )
    metrics = PrometheusMetrics()
    ctx.metrics = metrics
    if migrate.predates_keyed_hashes(before):
        legacy.adopt(ctx)
    return App(settings=settings, database=database, ctx=ctx, metrics=metrics)
