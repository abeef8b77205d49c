"""The emulators' fault switches, for the outage and backoff suites."""

from __future__ import annotations

from typing import Any

import httpx

from jitadmin.emulators.seed import CUSTOMERS

from support.system import System

# Latency that "hangs" a call: the emulator lets it go as soon as the faults are cleared.
HELD_MS = 120_000


def set_faults(admin_url: str, **settings: Any) -> None:
    """Switch an emulator's faults on (``settings``) or, with none, all off."""
    if settings:
        httpx.put(f"{admin_url}/faults", json=settings).raise_for_status()
    else:
        httpx.delete(f"{admin_url}/faults").raise_for_status()


def graph_admin(system: System) -> str:
    """The Graph emulator's admin URL (the first seeded customer's tenant)."""
    return str(system.world.graph_settings(CUSTOMERS[0])["admin_url"])


def psa_admin(system: System) -> str:
    return str(system.world.psa_settings()["admin_url"])
