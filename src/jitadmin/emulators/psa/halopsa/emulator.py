"""The HaloPSA emulator as the emulator server mounts it."""

from __future__ import annotations

from typing import Any

from jitadmin.emulators.psa.common import JournalPaths, PsaEmulator
from jitadmin.emulators.psa.halopsa.app import create_halopsa_app
from jitadmin.emulators.seed import SeedCredentials


def settings(root: str, creds: SeedCredentials) -> dict[str, Any]:
    return {
        "kind": "halopsa",
        "base_url": root,
        "auth_url": f"{root}/auth",
        "admin_url": f"{root}/_admin",
        "client_id": creds.halo_client_id,
        "client_secret": creds.halo_client_secret,
        "tenant": creds.halo_tenant,
    }


EMULATOR = PsaEmulator(
    kind="halopsa",
    create=create_halopsa_app,
    settings=settings,
    # Lower case: Halo's emulator matches faults on the case-folded path.
    paths=JournalPaths("/api/", "/actions", ("GET", "/api/tickets")),
)
