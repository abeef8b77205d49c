"""ConnectWise PSA (Manage) as a connector: its settings and its adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from jitadmin.adapters.psa.connectwise.adapter import ConnectWiseTickets
from jitadmin.core.connectors import SECRET, SERVER_URL, AdapterEnv, ConnectorFamily, ConnectorSpec


class ConnectWiseSettings(BaseModel):
    """An API member's keys: ``company_id+public_key:private_key`` plus the integration id."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    base_url: Annotated[str, SERVER_URL]  # https://<site>/v4_6_release/apis/3.0
    company_id: str
    public_key: str
    private_key: Annotated[str, SECRET]
    client_id: str  # the integration's clientId header, from the ConnectWise developer portal


SPEC = ConnectorSpec(
    kind="connectwise",
    family=ConnectorFamily.TICKET_SYSTEM,
    display_name="ConnectWise PSA",
    settings=ConnectWiseSettings,
    vendor_docs="https://developer.connectwise.com/Products/ConnectWise_PSA/REST",
)


def build(
    settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv, **extra: Any
) -> ConnectWiseTickets:
    return ConnectWiseTickets(
        settings["base_url"],
        settings["company_id"],
        settings["public_key"],
        secrets["private_key"],
        settings["client_id"],
        **{"egress": env.egress, **extra},
    )
