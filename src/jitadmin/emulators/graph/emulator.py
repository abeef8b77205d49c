"""The Graph emulator as a customer connection sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def m365_connection(graph: Mapping[str, Any]) -> dict[str, Any]:
    """The M365 connection settings that reach the emulated tenant ``graph`` describes
    (``EmulatorWorld.graph_settings``): the body of PUT /customers/{slug}/connections/m365."""
    return {
        "tenant_id": graph["tenant_id"],
        "client_id": graph["client_id"],
        "client_secret": graph["client_secret"],
        "authority_url": graph["authority_url"],
        "graph_url": graph["base_url"],
        "domain": graph["domain"],
    }
