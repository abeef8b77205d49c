"""Switching the demo customer's M365 connection to a Temporary Access Pass (e2e and web)."""

from __future__ import annotations

from jitadmin.emulators.seed import CUSTOMERS

from support.system import System

PEDRO = CUSTOMERS[0]
CONNECTION = "/customers/pedroaviary/connections/m365"


def choose_tap(system: System) -> list[str]:
    """Switch the customer to TAP; the connection test's findings."""
    graph = system.world.graph_settings(PEDRO)
    with system.client("admin") as api:
        saved = api.put(
            CONNECTION,
            json={
                "tenant_id": PEDRO.tenant_id,
                "client_id": graph["client_id"],
                "client_secret": graph["client_secret"],
                "graph_url": graph["base_url"],
                "authority_url": graph["authority_url"],
                "m365_credential": "tap",
            },
        )
        assert saved.status_code == 200, saved.text
        assert saved.json()["settings"]["m365_credential"] == "tap"
        tested = api.post(f"{CONNECTION}/test")
        assert tested.status_code == 200, tested.text
        findings: list[str] = tested.json()["findings"]
    return findings
