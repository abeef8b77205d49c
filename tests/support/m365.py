"""What the M365 adapter contract tests share: the Graph emulator served over real HTTP, a
provider factory with fast retry knobs, and a recorder standing in for the service.

The emulator runs in a thread; the adapter reaches Graph at ``<url>/v1.0`` and the token
endpoint through ``<url>/login`` (MSAL's ``http_client`` seam).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from jitadmin.adapters.m365.client import GraphClient
from jitadmin.adapters.m365.pim import NO_P2_NOTICE
from jitadmin.adapters.m365.provider import M365Connection, M365IdentityProvider
from jitadmin.core.passwords import generate_password
from jitadmin.emulators import seed
from jitadmin.emulators.graph.app import GraphState, create_graph_app
from jitadmin.emulators.runner import serve_in_thread
from jitadmin.ports import AccessResult, AccessSpec, RevokeSpec

from support.config import TEST_EGRESS

GA = "62e90394-69f5-4237-9190-012177145e10"
CUSTOMER = seed.CUSTOMERS[0]
OTHER = seed.CUSTOMERS[1]
TENANT = CUSTOMER.tenant_id
REQUESTER = "Example.User@msp.example"
FAST = {"budget_s": 2.0, "backoff_base_s": 0.02, "backoff_cap_s": 0.1, "max_attempts": 30}


@dataclass
class Emulator:
    url: str
    state: GraphState
    creds: seed.SeedCredentials
    admin: httpx.Client

    def faults(self, **settings: Any) -> None:
        self.admin.put("/_admin/faults", json=settings).raise_for_status()

    def journal(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.admin.get("/_admin/requests").json()
        return entries

    def statuses(self, method: str, path_part: str) -> list[int | None]:
        return [
            e["status"] for e in self.journal() if e["method"] == method and path_part in e["path"]
        ]

    def graph_get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """Read through the emulator's Graph API with a token of our own."""
        token = self.state.issue_token(TENANT)
        response = self.admin.get(
            f"/v1.0{path}", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()
        return response.json()

    def users_of(self, grant_id: str) -> list[dict[str, Any]]:
        users = self.state.tenant(TENANT).users.values()
        return [u.props for u in users if grant_id in str(u.props.get("displayName"))]

    def ga_holders(self) -> set[str]:
        return {
            a.principal_id for a in self.state.assignments(TENANT) if a.role_definition_id == GA
        }


@dataclass
class Recorder:
    """Stands in for the service: merges each step's data into the grant's account."""

    account: dict[str, Any] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    crash_on: str | None = None
    crash_before_commit: bool = False

    def __call__(self, step: str, data: dict[str, Any]) -> None:
        if step == self.crash_on and self.crash_before_commit:
            raise CrashError(step)
        self.steps.append(step)
        self.account.update(data)
        if step == self.crash_on:
            raise CrashError(step)


class CrashError(Exception):
    """The worker died right after (or before) committing a step."""


@contextmanager
def serve_emulator() -> Iterator[Emulator]:
    creds = seed.SeedCredentials()
    app, state = create_graph_app(seed.CUSTOMERS, creds)
    server = serve_in_thread(app)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as admin:
            yield Emulator(server.url, state, creds, admin)
    finally:
        server.stop()


def reset(emulator: Emulator) -> None:
    emulator.admin.delete("/_admin/faults").raise_for_status()
    emulator.admin.delete("/_admin/requests").raise_for_status()


ProviderFactory = Callable[..., M365IdentityProvider]


@contextmanager
def provider_factory(emulator: Emulator) -> Iterator[ProviderFactory]:
    made: list[M365IdentityProvider] = []

    def make(
        *,
        tenant_id: str = TENANT,
        client_id: str | None = None,
        secret: str | None = None,
        sleeps: list[float] | None = None,
        credential: str = "password",
        pim: str = "auto",
        **knobs: Any,
    ) -> M365IdentityProvider:
        connection = M365Connection(
            tenant_id=tenant_id,
            client_id=client_id or emulator.creds.graph_client_id,
            client_secret=secret or emulator.creds.graph_client_secret,
            authority_url=f"{emulator.url}/login",
            graph_url=f"{emulator.url}/v1.0",
            credential=credential,
            pim=pim,
        )
        timing = {**FAST, **knobs}
        client = None

        def sleep(seconds: float) -> None:
            if sleeps is not None:
                sleeps.append(seconds)
            time.sleep(seconds)

        if sleeps is not None:
            client = GraphClient.connect(
                connection.tenant_id,
                connection.client_id,
                connection.client_secret,
                authority_url=connection.authority_url,
                graph_url=connection.graph_url,
                sleep=sleep,
                egress=TEST_EGRESS,
                **timing,
            )
        provider = M365IdentityProvider(connection, client=client, egress=TEST_EGRESS, **timing)
        made.append(provider)
        return provider

    try:
        yield make
    finally:
        for provider in made:
            provider.close()


def access(password: str | None = None) -> AccessSpec:
    return AccessSpec(
        grant_id=str(uuid.uuid4()),
        requester=REQUESTER,
        password=password or generate_password(),
        expires_at=datetime.now(UTC) + timedelta(minutes=30),
    )


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll with a deadline (a short pause between polls keeps the emulator responsive)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        threading.Event().wait(0.01)
    return predicate()


def resume(spec: AccessSpec, account: dict[str, Any]) -> AccessSpec:
    """The spec the service passes on a later attempt: what was recorded so far."""
    return replace(spec, account=dict(account))


def revoke_spec(spec: AccessSpec, account: dict[str, Any], username: str | None) -> RevokeSpec:
    return RevokeSpec(spec.grant_id, spec.requester, username, dict(account))


def assert_granted(emulator: Emulator, spec: AccessSpec, result: AccessResult) -> str:
    users = emulator.users_of(spec.grant_id)
    assert len(users) == 1, "exactly one account per grant"
    user = users[0]
    assert user["employeeType"] == "jitadmin"
    assert user["accountEnabled"] is True
    assert user["userPrincipalName"] == result.username
    # The seeded tenants have no Entra ID P2: a plain assignment, and the grant says why.
    assert result.account == {
        "user_id": user["id"],
        "upn": result.username,
        "assignment_id": result.account["assignment_id"],
        "assigned_at": result.account["assigned_at"],
        "role_assignment": "direct",
        "role_notice": NO_P2_NOTICE,
    }
    assert user["id"] in emulator.ga_holders()
    return str(user["id"])


class StaticTokens:
    def token(self) -> str:
        return "static-token"

    def invalidate(self) -> None:
        """Nothing cached."""
