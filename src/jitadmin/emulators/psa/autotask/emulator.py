"""The Autotask emulator as the emulator server mounts it."""

from __future__ import annotations

from typing import Any

from jitadmin.emulators.psa.autotask.app import GLOBAL_ROOT, create_autotask_app
from jitadmin.emulators.psa.common import JournalPaths, PsaEmulator
from jitadmin.emulators.seed import SeedCredentials


def settings(root: str, creds: SeedCredentials) -> dict[str, Any]:
    return {
        "kind": "autotask",
        "base_url": f"{root}{GLOBAL_ROOT}",
        "admin_url": f"{root}/_admin",
        "username": creds.at_username,
        "secret": creds.at_secret,
        "integration_code": creds.at_integration_code,
    }


EMULATOR = PsaEmulator(
    kind="autotask",
    create=create_autotask_app,
    settings=settings,
    paths=JournalPaths("/Tickets/", "/Notes", ("POST", "/tickets/query")),
)
