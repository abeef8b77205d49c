"""The Metrics port on prometheus_client: events counted in the process that saw them.

Counts of things that happened (revocations and their lag, connector errors, drift) can only be
observed where they happen: in the worker. Each App gets its own registry, which its API's
``/metrics`` renders next to the gauges it reads from the database at scrape time. A worker
started alone (``jitadmin worker``) serves the same registry on its own port when
``JITADMIN_WORKER_METRICS_PORT`` is set.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds from when a grant should lose access (its expiry, or an earlier revoke request) to
# the verified revocation. The worker wakes within seconds; minutes mean an outage.
LAG_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._lag = Histogram(
            "jitadmin_revocation_lag_seconds",
            "Expiry (or revoke request, if earlier) to verified revocation",
            ["identity_provider"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self._errors = Counter(
            "jitadmin_connector_errors",
            "Failed calls to identity providers and ticket systems, by kind of failure",
            ["connector", "kind"],
            registry=self.registry,
        )
        self._drift = Counter(
            "jitadmin_drift",
            "Differences the reconciler found between the targets and the ledger",
            ["kind"],
            registry=self.registry,
        )
        self._throttled = Counter(
            "jitadmin_signin_throttled",
            "Sign-ins refused while a lockout holds (neither checked nor written), by scope",
            ["scope"],
            registry=self.registry,
        )

        self._tampering = Counter(
            "jitadmin_tampering",
            "Accounts jitadmin created whose tag or name was changed on the target",
            ["identity_provider"],
            registry=self.registry,
        )
        self._alerts = Counter(
            "jitadmin_security_alerts",
            "Abuse that was stopped and needs a look, by kind (e.g. reveal_limit_exceeded)",
            ["kind"],
            registry=self.registry,
        )

    def revocation_completed(self, identity_provider: str, lag_s: float) -> None:
        self._lag.labels(identity_provider).observe(max(lag_s, 0.0))

    def connector_error(self, connector: str, kind: str) -> None:
        self._errors.labels(connector, kind).inc()

    def drift(self, kind: str) -> None:
        self._drift.labels(kind).inc()

    def signin_throttled(self, scope: str) -> None:
        self._throttled.labels(scope).inc()

    def tampering(self, identity_provider: str) -> None:
        self._tampering.labels(identity_provider).inc()

    def security_alert(self, kind: str) -> None:
        self._alerts.labels(kind).inc()
