"""Settings from the environment (``JITADMIN_`` prefix). Secrets may come from ``*_FILE``."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jitadmin.core.egress import EgressPolicy

MIN_SECRET_KEY_LENGTH = 32
MIN_LENGTHS = {"secret_key": MIN_SECRET_KEY_LENGTH, "metrics_token": 16}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JITADMIN_", extra="ignore")

    data_dir: Path = Path(".data")
    database_url: str | None = None
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    previous_secret_keys: list[SecretStr] = Field(default_factory=list)

    # SQLite's fsync policy in WAL mode: "normal" syncs at checkpoints (a power loss may undo
    # the last commits, never half of one); "full" syncs every commit.
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    # Worker tuning.
    worker_concurrency: int = Field(default=8, ge=1, le=256)
    worker_per_tenant: int = Field(default=2, ge=1, le=64)
    worker_lease_seconds: float = Field(default=30.0, gt=0)
    # How long an on-prem agent holds a job without reporting a step; then another may take it.
    agent_job_lease_seconds: float = Field(default=60.0, gt=0)
    worker_max_idle_seconds: float = Field(default=5.0, gt=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_cap_seconds: float = Field(default=120.0, gt=0)
    revoke_max_attempts: int = Field(default=6, ge=1)
    revoke_failed_interval_seconds: float = Field(default=300.0, gt=0)
    provision_max_attempts: int = Field(default=6, ge=1)
    # Graph client budget per call before the worker reschedules.
    graph_retry_budget_seconds: float = Field(default=60.0, gt=0)
    graph_backoff_base_seconds: float = Field(default=1.0, gt=0)
    # How long a new Global Administrator assignment may stay invisible to Graph reads (a
    # revoke until then reads a 404 for it as "not yet"); Terraform's azuread waits 5 minutes.
    graph_new_assignment_wait_seconds: float = Field(default=300.0, ge=0)
    # Drift reconciler: how often each customer's tenants and domains are compared with the
    # ledger (one worker at a time per customer and kind).
    reconcile_interval_seconds: float = Field(default=300.0, gt=0)
    # Monitoring: a revocation this late counts as overdue; a worker started alone serves
    # its own /metrics on this port (the API process serves its in-process worker's).
    overdue_grace_seconds: float = Field(default=300.0, ge=0)
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Web console sessions: signed out after this long without a page view, and in any case
    # this long after sign-in. Cookie "Secure": auto = when the request came over https.
    web_session_idle_minutes: float = Field(default=30.0, gt=0)
    web_session_absolute_hours: float = Field(default=12.0, gt=0)
    web_cookie_secure: Literal["auto", "always", "never"] = "auto"

    # Security limits (docs/security.md).
    reveal_limit_per_hour: int = Field(default=10, ge=1)
    reveal_limit_global_per_hour: int = Field(default=30, ge=1)
    signin_failures_per_user: int = Field(default=5, ge=1)
    signin_failures_per_client: int = Field(default=20, ge=1)
    signin_lockout_minutes: float = Field(default=15.0, gt=0)
    signin_failures_global: int = Field(default=100, ge=1)
    api_token_days: float = Field(default=90.0, gt=0)
    # Comma-separated roles that must sign in with TOTP (enrolled at their first sign-in).
    totp_required_roles: str = "admin"
    # How many customers one user may hold live grants in at once (docs/approvals.md).
    max_active_grants_per_user: int = Field(default=3, ge=1)
    # PSA calls a user may cause a minute (ticket picker, ticket checks; beyond: 429), and how
    # long the picker's ticket list of a customer is kept per user (0: not kept).
    psa_lookups_per_minute: int = Field(default=30, ge=1)
    psa_ticket_cache_seconds: float = Field(default=30.0, ge=0)
    max_request_bytes: int = Field(default=65536, ge=1024)
    # Hardening (docs/security.md): /metrics needs this bearer token (unset: /metrics is off,
    # 404); /docs is a script-free page listing the operations, off unless enabled; proxy
    # headers (X-Forwarded-For/-Proto) count only from these peers (comma-separated addresses
    # or networks, "*" for any; default: none, the TCP peer is the client).
    metrics_token: SecretStr | None = None
    api_docs: bool = False
    forwarded_allow_ips: str = ""
    # Notifications (docs/notifications.md): the console's public address for the links they
    # carry (empty: links are paths such as /grants/<id>).
    public_url: str = ""
    # Email notifications: the SMTP server (unset: email channels cannot deliver).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_from: str = "jitadmin@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_password_file: Path | None = None
    # STARTTLS before any credential is sent (off only for a relay on a trusted network).
    smtp_starttls: bool = True
    # OpenID Connect sign-in (docs/security.md "Signing in with OpenID Connect"); off while
    # the issuer is empty. The redirect URI is {public_url}/auth/oidc/callback.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr | None = None
    oidc_client_secret_file: Path | None = None
    # The claim whose values map to roles (Entra: app roles "roles", or "groups") and the map
    # (JSON: claim value -> jitadmin role); an optional claim naming the customers (slugs).
    oidc_roles_claim: str = "roles"
    oidc_role_map: dict[str, str] = Field(default_factory=dict)
    oidc_customers_claim: str = ""
    # The ID token's amr must contain "mfa".
    oidc_require_mfa: bool = True
    oidc_display_name: str = "Microsoft"
    # The username/password form (break-glass accounts); false: only the OIDC button.
    local_signin: bool = True
    # Egress: networks (CIDR) and host names reachable besides public addresses, as a comma
    # separated or JSON list; loopback, private and metadata addresses only when listed.
    egress_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("egress_allow", mode="before")
    @classmethod
    def _allow_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else re.split(r"[\s,]+", text)
        return value

    @field_validator("egress_allow")
    @classmethod
    def _allow_entries(cls, value: list[str]) -> list[str]:
        EgressPolicy.parse(value)  # a ValueError names the entry
        return [entry.strip() for entry in value if entry.strip()]

    @property
    def egress_policy(self) -> EgressPolicy:
        return EgressPolicy.parse(self.egress_allow)

    @field_validator("secret_key", "metrics_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        minimum = MIN_LENGTHS[str(info.field_name)]
        if value is not None and len(value.get_secret_value()) < minimum:
            raise ValueError(f"must be at least {minimum} characters")
        return value

    @model_validator(mode="after")
    def _read_key_file(self) -> Settings:
        if self.secret_key is None and self.secret_key_file is not None:
            key = self.secret_key_file.read_text().strip()
            if len(key) < MIN_SECRET_KEY_LENGTH:
                raise ValueError(
                    "JITADMIN_SECRET_KEY_FILE must hold at least "
                    f"{MIN_SECRET_KEY_LENGTH} characters"
                )
            self.secret_key = SecretStr(key)
        if self.smtp_password is None and self.smtp_password_file is not None:
            self.smtp_password = SecretStr(self.smtp_password_file.read_text().strip())
        if self.oidc_client_secret is None and self.oidc_client_secret_file is not None:
            self.oidc_client_secret = SecretStr(self.oidc_client_secret_file.read_text().strip())
        self._check_oidc()
        return self

    def _check_oidc(self) -> None:
        if not self.oidc_issuer:
            if not self.local_signin:
                raise ValueError(
                    "JITADMIN_LOCAL_SIGNIN=false needs JITADMIN_OIDC_ISSUER: "
                    "otherwise nobody can sign in to the web console"
                )
            return
        _check_issuer(self.oidc_issuer)
        missing = [
            name
            for name, value in (
                ("JITADMIN_OIDC_CLIENT_ID", self.oidc_client_id),
                ("JITADMIN_OIDC_CLIENT_SECRET (or _FILE)", self.oidc_client_secret),
                ("JITADMIN_OIDC_ROLE_MAP", self.oidc_role_map),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"JITADMIN_OIDC_ISSUER is set, so {missing[0]} must be set too")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'jitadmin.db').resolve()}"

    def require_secret_key(self) -> str:
        if self.secret_key is None:
            raise ValueError(
                "JITADMIN_SECRET_KEY (or JITADMIN_SECRET_KEY_FILE) is not set; "
                "`jitadmin keys generate` prints one"
            )
        return self.secret_key.get_secret_value()


def _check_issuer(issuer: str) -> None:
    """https, or http to a loopback host only (a test or demo provider on this machine): over
    http anyone on the path could swap the discovery document and JWKS, and sign anyone in."""
    try:
        parts = urlsplit(issuer)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or not host or parts.scheme not in ("https", "http"):
        raise ValueError("JITADMIN_OIDC_ISSUER must be a URL (https://...)")
    if parts.scheme == "http" and not _loopback(host):
        raise ValueError(
            "JITADMIN_OIDC_ISSUER must use https:// (http:// only for a loopback host: "
            "localhost, 127.0.0.0/8 or ::1)"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
