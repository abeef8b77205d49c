"""On-premises Active Directory as a connector: settings, words in notes, the adapter."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from jitadmin.adapters.ad.agent import AgentIdentityProvider
from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider, AdConnection
from jitadmin.adapters.ad.replicas import other_dcs_rule
from jitadmin.core.connectors import (
    SECRET,
    SERVER_URL,
    AccessWording,
    AdapterEnv,
    ConnectorFamily,
    ConnectorSpec,
)
from jitadmin.core.errors import MisconfiguredError
from jitadmin.core.naming import normalised


class AdSettings(BaseModel):
    """One domain, reached over LDAPS (or LDAP with StartTLS) with a delegated bind account."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    url: Annotated[str, SERVER_URL]  # ldaps://dc.example.local[:636]
    bind_user: str  # user@domain or a DN
    bind_password: Annotated[str, SECRET]
    base_dn: str | None = None  # default: the DC's defaultNamingContext
    ou: str | None = None  # where tech accounts live; default CN=Users
    ca_pem: str | None = None  # the DC's CA certificate (PEM); default: the system's store
    # The domain's other writable DCs, each written to and read back on revoke: LDAPS URLs
    # separated by spaces or commas, and/or found under CN=Sites,CN=Configuration.
    other_dcs: str | None = None
    discover_dcs: bool = False
    # The tech account joins Protected Users and is "sensitive and cannot be delegated".
    protected_users: bool = False
    # Domain Admins membership with a TTL where the forest has the PAM feature; else plain.
    time_bound_membership: bool = False


def _bind_domain(settings: Mapping[str, Any]) -> str:
    user = str(settings.get("bind_user") or "")
    return normalised(user.rsplit("@", 1)[1]) if "@" in user else ""


def _tenant_switch(old: Mapping[str, Any], new: Mapping[str, Any], _pinned: set[str]) -> str | None:
    # Without the network only the base DN and a user@domain bind user tell the domain apart;
    # the worker compares the domain SID before every revoke.
    for label, before, after in (
        ("base_dn", normalised(old.get("base_dn")), normalised(new.get("base_dn"))),
        ("bind_user domain", _bind_domain(old), _bind_domain(new)),
    ):
        if before and after and before != after:
            return f"{label} {before!r} -> {after!r}"
    return None


def _check(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    rule = other_dcs_rule(settings.get("other_dcs"))
    return [("other_dcs", rule)] if rule else []


WORDING = AccessWording(
    granted=(
        "The tech account {username} is now enabled and has been added to Domain Admins "
        "until {expires_at}."
    ),
    revoked=(
        "The tech account {username} has been removed from Domain Admins, disabled, and "
        "its password reset."
    ),
    privileged_group="Domain Admins",
    # The default Kerberos policy's longest ticket lifetime; Protected Users caps it at 4 h.
    outlived_by=(
        "Kerberos tickets issued before this may keep Domain Admins until {until} (the "
        "default 10-hour ticket lifetime); signed-in sessions keep it until they sign out."
    ),
    outlived_for=timedelta(hours=10),
)

SPEC = ConnectorSpec(
    kind="ad",
    family=ConnectorFamily.IDENTITY_PROVIDER,
    display_name="On Prem AD",
    settings=AdSettings,
    url_schemes=("ldaps", "ldap"),
    url_rule="must be ldaps://host[:port] (LDAPS) or ldap://host[:port] (StartTLS)",
    wording=WORDING,
    reuses_accounts=True,
    tenant_switch=_tenant_switch,
    check=_check,
    vendor_docs="https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-adts/",
)


def build(
    settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv, **extra: Any
) -> ActiveDirectoryIdentityProvider:
    connection = AdConnection(
        url=settings["url"],
        bind_user=settings["bind_user"],
        bind_password=secrets["bind_password"],
        ca_pem=settings.get("ca_pem"),
        base_dn=settings.get("base_dn"),
        ou=settings.get("ou"),
        domain_prefix=env.domain_prefix,
        other_dcs=settings.get("other_dcs"),
        discover_dcs=bool(settings.get("discover_dcs")),
        protected_users=bool(settings.get("protected_users")),
        time_bound_membership=bool(settings.get("time_bound_membership")),
    )
    # Small timeouts: an unreachable DC fails fast and the worker's backoff retries.
    options: dict[str, Any] = {
        "connect_timeout_s": 5.0,
        "receive_timeout_s": 10,
        "egress": env.egress,
        **extra,
    }
    return ActiveDirectoryIdentityProvider(connection, **options)


class AgentSettings(BaseModel):
    """Nothing: the DC's address and the bind credential stay on the agent's machine. The
    connection is made by enrolling an agent (POST /customers/{slug}/agents/enrollments)."""

    model_config = ConfigDict(extra="forbid")


AGENT_SPEC = ConnectorSpec(
    kind="ad_agent",
    family=ConnectorFamily.IDENTITY_PROVIDER,
    display_name="On Prem AD (via agent)",
    settings=AgentSettings,
    wording=WORDING,
    reuses_accounts=True,
    saved_by_admin=False,
    vendor_docs="https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-adts/",
)


def build_agent(
    settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv, **extra: Any
) -> AgentIdentityProvider:
    if env.agent_jobs is None:
        raise MisconfiguredError("this process has no agent job queue (wiring)")
    return AgentIdentityProvider(env.customer, env.agent_jobs, env.domain_prefix)
