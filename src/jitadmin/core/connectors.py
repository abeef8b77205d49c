"""What jitadmin knows about each kind of connector, without talking to it.

A ``ConnectorSpec`` is one vendor's description: its family (an identity provider that holds
the admin accounts, or the ticket system that holds the tickets), its display name, its
settings model (pydantic; each field marked ``Secret``, ``ServerUrl`` or ``Tenant`` where that
matters) and, for identity providers, the words its ticket notes use. Services read specs
from a ``ConnectorCatalog``; the composition root (``jitadmin.connectors``) fills the catalog
with each vendor's spec, adapter builder and emulator, so a vendor is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from jitadmin.core.egress import EgressPolicy


class ConnectorFamily(StrEnum):
    IDENTITY_PROVIDER = "identity_provider"
    TICKET_SYSTEM = "ticket_system"


@dataclass(frozen=True)
class SettingRole:
    """A marker on a settings field: ``Annotated[str, SECRET]``."""

    name: str


# Write-only: sealed at rest, never shown, never logged.
SECRET = SettingRole("secret")
# A server jitadmin connects to: checked against the egress policy when saved.
SERVER_URL = SettingRole("server_url")


@dataclass(frozen=True)
class AccessWording:
    """How an identity provider's access reads in ticket notes (each names the account)."""

    # "… is now enabled and has been added to …" (``{username}``, ``{expires_at}``)
    granted: str
    # "… has been removed from …" (``{username}``)
    revoked: str
    # What drift found the account in: "Domain Admins", "an admin role".
    privileged_group: str
    # What issued before the revocation may still be honoured (Kerberos tickets) and for how
    # long, said in the revoke note (``{until}``: revoked at + outlived_for); None: nothing.
    outlived_by: str | None = None
    outlived_for: timedelta | None = None


# A tenant switch check: (saved settings, new settings, tenants of unfinished grants) → what
# changes tenant ("tenant_id 'a' -> 'b'"), or None when the new settings stay in the tenant.
TenantSwitch = Callable[[Mapping[str, Any], Mapping[str, Any], set[str]], str | None]


def _no_tenant_switch(_old: Mapping[str, Any], _new: Mapping[str, Any], _p: set[str]) -> None:
    return None


class SettingsFields:
    """The roles of a settings model's fields (its ``settings``)."""

    settings: type[BaseModel]

    def _fields_with(self, role: SettingRole) -> tuple[str, ...]:
        return tuple(n for n, f in self.settings.model_fields.items() if role in f.metadata)

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return self._fields_with(SECRET)

    @property
    def url_fields(self) -> tuple[str, ...]:
        return self._fields_with(SERVER_URL)

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(n for n, f in self.settings.model_fields.items() if f.is_required())

    @property
    def fields(self) -> Mapping[str, FieldInfo]:
        return self.settings.model_fields


@dataclass(frozen=True)
class SharedApp(SettingsFields):
    """An app registration the MSP makes once and every customer connection without its own
    credentials uses (M365's multi-tenant app), and how a customer's admin consents to it."""

    name: str  # the record's kind and the API path: "m365-app"
    settings: type[BaseModel]
    # Settings and secrets together → [(field, rule)].
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]]
    # Whether a customer connection's settings leave the credentials to the shared app.
    used_by: Callable[[Mapping[str, Any]], bool]
    # Fields that describe the app itself and never reach a customer's adapter.
    own_fields: tuple[str, ...] = ()
    # (app settings, tenant or "organizations", redirect URI, state) → the admin-consent URL.
    consent_url: Callable[[Mapping[str, Any], str, str, str], str] | None = None
    # Where the web console receives the admin back (path under the console's own URL).
    consent_path: str = ""


@dataclass(frozen=True)
class ConnectorSpec(SettingsFields):
    kind: str  # the name in URLs, settings and the database: "m365", "connectwise"
    family: ConnectorFamily
    display_name: str  # what people read: the form's label, the docs' table
    settings: type[BaseModel]
    # URL schemes a ``SERVER_URL`` field may use, and the rule shown when another is used.
    url_schemes: tuple[str, ...] = ("https",)
    url_rule: str = "must be an https URL"
    wording: AccessWording | None = None  # identity providers only
    # Whether a grant re-uses one standing account per technician (AD's tech account), so a new
    # grant must wait until an earlier revocation of that account is verified.
    reuses_accounts: bool = False
    tenant_switch: TenantSwitch = _no_tenant_switch
    # False: no PUT .../connections/{kind}; the connection is made another way (an on-prem
    # agent's enrollment makes the ``ad_agent`` one).
    saved_by_admin: bool = True
    # Extra per-field checks on saved settings: settings → [(field, rule)].
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] = lambda _settings: []
    vendor_docs: str = ""  # the vendor's API documentation, for the docs table
    # The MSP-wide app registration its connections may share (M365), or None.
    app: SharedApp | None = None

    @property
    def optional_fields(self) -> tuple[str, ...]:
        return tuple(n for n, f in self.settings.model_fields.items() if not f.is_required())


# For a grant whose identity provider is no longer built in: plain words, never a wrong vendor's.
GENERIC_WORDING = AccessWording(
    granted="The account {username} is now enabled and has admin access until {expires_at}.",
    revoked="Admin access has been removed from the account {username}.",
    privileged_group="an admin role",
)


@dataclass
class ConnectorCatalog:
    """The specs jitadmin was built with, by kind; each family in registration order."""

    specs: dict[str, ConnectorSpec] = field(default_factory=dict)

    def add(self, spec: ConnectorSpec) -> None:
        if spec.kind in self.specs:
            raise ValueError(f"connector {spec.kind!r} is registered already")
        self.specs[spec.kind] = spec

    def remove(self, kind: str) -> None:
        self.specs.pop(kind, None)

    def get(self, kind: str, family: ConnectorFamily | None = None) -> ConnectorSpec | None:
        spec = self.specs.get(kind)
        return spec if spec is not None and family in (None, spec.family) else None

    def wording(self, kind: str) -> AccessWording:
        spec = self.get(kind, ConnectorFamily.IDENTITY_PROVIDER)
        return spec.wording if spec is not None and spec.wording else GENERIC_WORDING

    def kinds(self, family: ConnectorFamily) -> tuple[str, ...]:
        return tuple(k for k, s in self.specs.items() if s.family == family)

    @property
    def identity_providers(self) -> tuple[str, ...]:
        return self.kinds(ConnectorFamily.IDENTITY_PROVIDER)

    @property
    def ticket_systems(self) -> tuple[str, ...]:
        return self.kinds(ConnectorFamily.TICKET_SYSTEM)

    def __iter__(self) -> Iterator[ConnectorSpec]:
        return iter(self.specs.values())


@dataclass(frozen=True)
class AdapterEnv:
    """What every adapter builder is given besides the connection's own settings."""

    egress: EgressPolicy = field(default_factory=EgressPolicy)
    graph_retry_budget_s: float = 60.0
    graph_backoff_base_s: float = 1.0
    # How long a new Graph role assignment may stay invisible to reads (see the M365 adapter).
    graph_new_assignment_wait_s: float = 300.0
    # The customer's prefix for account names (identity providers; "" for ticket systems).
    domain_prefix: str = ""
    customer: str = ""  # the customer's slug (identity providers)
    # The on-prem agents' job queue (``ports.AgentJobQueue``; None: a process without one).
    agent_jobs: Any = None
