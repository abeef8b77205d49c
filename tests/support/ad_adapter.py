"""Driving ActiveDirectoryIdentityProvider directly in tests: specs, a recorder, logons."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider, AdConnection
from jitadmin.core.passwords import generate_password
from jitadmin.ports import AccessResult, AccessSpec, RevokeSpec

from support.ad import SambaDc
from support.config import TEST_EGRESS


def provider_for(connection: AdConnection, **options: Any) -> ActiveDirectoryIdentityProvider:
    """The adapter under the tests' egress policy (the DC listens on loopback)."""
    return ActiveDirectoryIdentityProvider(connection, egress=TEST_EGRESS, **options)


class Steps:
    """A ProgressRecorder that keeps what it was told, like the worker's does durably.

    ``after`` runs a test's action right after a step is recorded: what someone else does to
    the domain between two of the adapter's operations.
    """

    def __init__(self, after: dict[str, Callable[[], None]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._after = dict(after or {})

    def __call__(self, step: str, data: dict[str, Any]) -> None:
        self.calls.append((step, data))
        action = self._after.pop(step, None)
        if action is not None:
            action()

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def spec(requester: str, password: str | None = None) -> AccessSpec:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
    return AccessSpec(str(uuid.uuid4()), requester, password or generate_password(), expires)


def revoke_spec(granted: AccessSpec, result: AccessResult) -> RevokeSpec:
    return RevokeSpec(granted.grant_id, granted.requester, result.username, result.account)


def logon(samba_dc: SambaDc, sam: str, password: str) -> tuple[bool, str]:
    return samba_dc.bind(f"{samba_dc.netbios}\\{sam}", password)
