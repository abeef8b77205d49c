"""Deskline as a connector: its settings and its adapter (what a registry line joins)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from fourth_psa.adapter import DesklineTickets
from jitadmin.core.connectors import SECRET, SERVER_URL, AdapterEnv, ConnectorFamily, ConnectorSpec

KIND = "deskline"


class DesklineSettings(BaseModel):
    """One API key of a Deskline account."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    base_url: Annotated[str, SERVER_URL]  # https://<account>.deskline.example
    api_key: Annotated[str, SECRET]


SPEC = ConnectorSpec(
    kind=KIND,
    family=ConnectorFamily.TICKET_SYSTEM,
    display_name="Deskline",
    settings=DesklineSettings,
    vendor_docs="(fictional: see tests/fourth_psa/__init__.py)",
)


def build(
    settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv, **extra: Any
) -> DesklineTickets:
    return DesklineTickets(
        settings["base_url"], secrets["api_key"], **{"egress": env.egress, **extra}
    )
