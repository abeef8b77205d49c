"""Autotask PSA as a connector: its settings and its adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from jitadmin.adapters.psa.autotask.adapter import AutotaskTickets
from jitadmin.core.connectors import SECRET, SERVER_URL, AdapterEnv, ConnectorFamily, ConnectorSpec


class AutotaskSettings(BaseModel):
    """An API-only user (its email as user name), its secret and the integration's code."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    base_url: Annotated[str, SERVER_URL]  # the zone's REST root, https://webservicesN.autotask.net
    username: str
    secret: Annotated[str, SECRET]
    integration_code: str  # the API tracking identifier
    note_type: int | None = None  # TicketNote noteType; default 1
    publish: int | None = None  # TicketNote publish; default 2 (internal users only)


SPEC = ConnectorSpec(
    kind="autotask",
    family=ConnectorFamily.TICKET_SYSTEM,
    display_name="Autotask PSA",
    settings=AutotaskSettings,
    vendor_docs="https://www.autotask.net/help/developerhelp/Content/APIs/REST/REST_API_Home.htm",
)


def build(
    settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv, **extra: Any
) -> AutotaskTickets:
    options: dict[str, Any] = {
        "note_type": settings.get("note_type") or 1,
        "publish": settings.get("publish") or 2,
        "egress": env.egress,
        **extra,
    }
    return AutotaskTickets(
        settings["base_url"],
        settings["username"],
        secrets["secret"],
        settings["integration_code"],
        **options,
    )
