"""The ConnectWise emulator as the emulator server mounts it."""

from __future__ import annotations

from typing import Any

from jitadmin.emulators.psa.common import JournalPaths, PsaEmulator
from jitadmin.emulators.psa.connectwise.app import API_ROOT, create_connectwise_app
from jitadmin.emulators.seed import SeedCredentials


def settings(root: str, creds: SeedCredentials) -> dict[str, Any]:
    return {
        "kind": "connectwise",
        "base_url": f"{root}{API_ROOT}",
        "admin_url": f"{root}/_admin",
        "company_id": creds.cw_company_id,
        "public_key": creds.cw_public_key,
        "private_key": creds.cw_private_key,
        "client_id": creds.cw_client_id,
    }


EMULATOR = PsaEmulator(
    kind="connectwise",
    create=create_connectwise_app,
    settings=settings,
    # ConnectWise's drop switch only answers 500.
    paths=JournalPaths("service/tickets", "/notes", ("GET", "/service/tickets"), ("500",)),
)
