"""Microsoft 365 as a connector: its settings, its words in ticket notes, its adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict

from jitadmin.adapters.m365.auth import CANONICAL_AUTHORITY
from jitadmin.adapters.m365.client import GRAPH_URL
from jitadmin.adapters.m365.directory import UPN_DOMAIN_MAX, UPN_DOMAIN_RULE
from jitadmin.adapters.m365.provider import M365Connection, M365IdentityProvider
from jitadmin.core.connectors import (
    SECRET,
    SERVER_URL,
    AccessWording,
    AdapterEnv,
    ConnectorFamily,
    ConnectorSpec,
)
from jitadmin.core.naming import TENANT_ID_RULE, is_tenant_id, normalised


class M365Settings(BaseModel):
    """One customer tenant, reached with the MSP's app registration (client credentials)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    tenant_id: str  # the tenant's GUID or one of its domain names
    client_id: str
    client_secret: Annotated[str, SECRET]
    domain: str | None = None  # the domain of new accounts; default: the tenant's initial one
    authority_url: Annotated[str | None, SERVER_URL] = None  # default login.microsoftonline.com
    graph_url: Annotated[str | None, SERVER_URL] = None  # default graph.microsoft.com/v1.0
    # What the technician signs in with: the one-time password, or a Temporary Access Pass
    # (lets a new admin sign in where MFA registration would be forced on a throw-away account).
    m365_credential: Literal["password", "tap"] = "password"


def _check(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    tenant = settings.get("tenant_id")
    if tenant is not None and not is_tenant_id(str(tenant)):
        problems.append(("tenant_id", TENANT_ID_RULE))
    domain = settings.get("domain")
    if domain and len(str(domain)) > UPN_DOMAIN_MAX:
        problems.append(("domain", UPN_DOMAIN_RULE))
    return problems


def _tenant_switch(old: Mapping[str, Any], new: Mapping[str, Any], pinned: set[str]) -> str | None:
    before, after = normalised(old.get("tenant_id")), normalised(new.get("tenant_id"))
    if after != before and after not in pinned:
        return f"tenant_id {before!r} -> {after!r}"
    return None


SPEC = ConnectorSpec(
    kind="m365",
    family=ConnectorFamily.IDENTITY_PROVIDER,
    display_name="M365",
    settings=M365Settings,
    wording=AccessWording(
        granted=(
            "The account {username} is now enabled and has been added to the Global Admin role."
        ),
        # The first sentence is what PSA readers and tests look for; keep it word for word.
        revoked=(
            "Global Admin has been removed from the account {username} and the account has "
            "been deleted. Access tokens already issued to it can stay valid for up to about "
            "90 minutes: Microsoft 365 does not cut them short."
        ),
        privileged_group="an admin role",
    ),
    tenant_switch=_tenant_switch,
    check=_check,
    vendor_docs="https://learn.microsoft.com/en-us/graph/api/overview",
)


def build(
    settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv, **extra: Any
) -> M365IdentityProvider:
    connection = M365Connection(
        tenant_id=settings["tenant_id"],
        client_id=settings["client_id"],
        client_secret=secrets["client_secret"],
        authority_url=settings.get("authority_url") or CANONICAL_AUTHORITY,
        graph_url=settings.get("graph_url") or GRAPH_URL,
        domain=settings.get("domain"),
        credential=settings.get("m365_credential") or "password",
    )
    options: dict[str, Any] = {
        "budget_s": env.graph_retry_budget_s,
        "backoff_base_s": env.graph_backoff_base_s,
        "new_assignment_wait_s": env.graph_new_assignment_wait_s,
        "egress": env.egress,
        **extra,
    }
    return M365IdentityProvider(connection, **options)
