"""HaloPSA as a connector: its settings and its adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from jitadmin.adapters.psa.halopsa.adapter import DEFAULT_OUTCOME_ID, HaloTickets
from jitadmin.core.connectors import SECRET, SERVER_URL, AdapterEnv, ConnectorFamily, ConnectorSpec


class HaloSettings(BaseModel):
    """A client-credentials API application: the resource server and its auth server."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    base_url: Annotated[str, SERVER_URL]  # https://<instance>.halopsa.com
    auth_url: Annotated[str, SERVER_URL]  # https://<instance>.halopsa.com/auth
    client_id: str
    client_secret: Annotated[str, SECRET]
    tenant: str | None = None  # hosted instances: the tenant name sent when getting a token
    outcome_id: int | None = None  # the private-note outcome; default 7


SPEC = ConnectorSpec(
    kind="halopsa",
    family=ConnectorFamily.TICKET_SYSTEM,
    display_name="HaloPSA",
    settings=HaloSettings,
    vendor_docs="https://halopsa.com/apidoc/",
)


def build(
    settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv, **extra: Any
) -> HaloTickets:
    options: dict[str, Any] = {
        "outcome_id": settings.get("outcome_id") or DEFAULT_OUTCOME_ID,
        "egress": env.egress,
        **extra,
    }
    return HaloTickets(
        settings["base_url"],
        settings["auth_url"],
        settings["client_id"],
        secrets["client_secret"],
        settings.get("tenant"),
        **options,
    )
