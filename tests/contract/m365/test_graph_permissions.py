"""Permissions live in the token: the emulator's JWT access tokens and permission table, and
how the M365 adapter reads them (the connection test, a 403 during a revoke).

Microsoft's tables: https://learn.microsoft.com/graph/api/user-delete (User.ReadWrite.All or
User.DeleteRestore.All), https://learn.microsoft.com/graph/api/directory-deleteditems-delete
(User.DeleteRestore.All only for a user), https://learn.microsoft.com/graph/permissions-reference
(Directory.ReadWrite.All "does not allow apps to delete users or groups"); the roles claim:
https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jitadmin.adapters.m365.permissions import token_roles
from jitadmin.core.errors import MisconfiguredError
from jitadmin.emulators.graph.model import CONSENTED_PERMISSIONS

from support.m365 import (
    OTHER,
    TENANT,
    Emulator,
    ProviderFactory,
    Recorder,
    access,
    provider_factory,
    reset,
    revoke_spec,
    serve_emulator,
)

NO_LAG = {"deleted_lag_requests": 0, "privileged_lag_requests": 0, "removed_lag_requests": 0}


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator() as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(emulator: Emulator) -> Iterator[None]:
    reset(emulator)
    yield
    emulator.state.set_app(OTHER.tenant_id, roles=CONSENTED_PERMISSIONS)


@pytest.fixture
def make_provider(emulator: Emulator) -> Iterator[ProviderFactory]:
    with provider_factory(emulator) as make:
        yield make


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def as_app(emulator: Emulator, method: str, path: str, roles: list[str]) -> httpx.Response:
    token = emulator.state.issue_token(TENANT, roles=roles)
    return emulator.admin.request(
        method, f"/v1.0{path}", headers={"Authorization": f"Bearer {token}"}
    )


def denied(response: httpx.Response) -> bool:
    return response.status_code == 403 and (
        response.json()["error"]["code"] == "Authorization_RequestDenied"
    )


# --- the emulator does what Graph does ---------------------------------------------------


def test_the_token_endpoint_issues_a_jwt_with_roles_tid_and_appid(emulator: Emulator) -> None:
    response = emulator.admin.post(
        f"/login/{TENANT}/oauth2/v2.0/token",
        data={
            "client_id": emulator.creds.graph_client_id,
            "client_secret": emulator.creds.graph_client_secret,
            "scope": "https://graph.microsoft.com/.default",
            "grant_type": "client_credentials",
        },
    )
    token = response.json()["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    claims = claims_of(token)
    assert header["typ"] == "JWT"
    assert claims["roles"] == sorted(CONSENTED_PERMISSIONS)
    assert claims["tid"] == TENANT.lower()
    assert claims["appid"] == emulator.creds.graph_client_id.lower()
    assert claims["idtyp"] == "app"
    assert claims["iss"] == f"https://sts.windows.net/{TENANT.lower()}/"
    assert claims["exp"] > claims["iat"]
    assert token_roles(token) == frozenset(CONSENTED_PERMISSIONS)


def test_roles_follow_the_consent_at_issue_time(emulator: Emulator) -> None:
    emulator.state.set_app(OTHER.tenant_id, roles=["User.Read.All"])
    token = emulator.state.issue_token(OTHER.tenant_id)
    assert claims_of(token)["roles"] == ["User.Read.All"]


def test_directory_readwrite_all_does_not_delete_or_purge_users(emulator: Emulator) -> None:
    emulator.faults(**NO_LAG)
    user_id = emulator.state.add_user(TENANT, f"perm1@{_domain(emulator)}")
    assert denied(as_app(emulator, "DELETE", f"/users/{user_id}", ["Directory.ReadWrite.All"]))
    deleted = as_app(emulator, "DELETE", f"/users/{user_id}", ["User.DeleteRestore.All"])
    assert deleted.status_code == 204
    purge = f"/directory/deletedItems/{user_id}"
    for roles in (["Directory.ReadWrite.All"], ["User.ReadWrite.All"]):
        assert denied(as_app(emulator, "DELETE", purge, roles))
    assert as_app(emulator, "DELETE", purge, ["User.DeleteRestore.All"]).status_code == 204
    assert all(u.id != user_id for u in emulator.state.deleted_users(TENANT))


def test_user_readwrite_all_deletes_a_user(emulator: Emulator) -> None:
    emulator.faults(**NO_LAG)
    user_id = emulator.state.add_user(TENANT, f"perm2@{_domain(emulator)}")
    assert (
        as_app(emulator, "DELETE", f"/users/{user_id}", ["User.ReadWrite.All"]).status_code == 204
    )


def _domain(emulator: Emulator) -> str:
    return emulator.state.tenant(TENANT).domains[0].id


# --- the adapter copes --------------------------------------------------------------------


def test_connection_test_names_every_missing_permission(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    # Directory.ReadWrite.All stands in for User.ReadWrite.All and Domain.Read.All, and
    # User.ReadWrite.All for User.RevokeSessions.All; nothing stands in for the other two.
    emulator.state.set_app(OTHER.tenant_id, roles=["Directory.ReadWrite.All"])
    provider = make_provider(tenant_id=OTHER.tenant_id)
    with pytest.raises(MisconfiguredError) as caught:
        provider.check()
    message = caught.value.message
    assert "RoleManagement.ReadWrite.Directory" in message
    assert "User.DeleteRestore.All" in message
    assert "User.RevokeSessions.All" not in message
    assert "Domain.Read.All" not in message
    assert "missing application permission" in message


def test_connection_test_picks_up_consent_granted_since_the_token(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    emulator.state.set_app(OTHER.tenant_id, roles=["User.ReadWrite.All", "Domain.Read.All"])
    provider = make_provider(tenant_id=OTHER.tenant_id)
    with pytest.raises(MisconfiguredError, match=r"User\.DeleteRestore\.All"):
        provider.check()
    emulator.state.set_app(OTHER.tenant_id, roles=CONSENTED_PERMISSIONS)
    before = len(emulator.statuses("POST", "/oauth2/v2.0/token"))
    findings = provider.check()
    assert any(f.startswith("application permissions granted") for f in findings)
    # The cached token lacked them: dropped once, one new token asked for.
    assert len(emulator.statuses("POST", "/oauth2/v2.0/token")) == before + 1


def test_a_revoke_without_the_purge_permission_names_it_at_once(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    emulator.faults(**NO_LAG)
    provider = make_provider(tenant_id=OTHER.tenant_id)
    spec = access()
    recorder = Recorder()
    result = provider.grant(spec, recorder)
    granted = [p for p in CONSENTED_PERMISSIONS if p != "User.DeleteRestore.All"]
    emulator.state.set_app(OTHER.tenant_id, roles=granted)
    emulator.admin.delete("/_admin/tokens").raise_for_status()  # the next token lacks it
    emulator.admin.delete("/_admin/requests").raise_for_status()
    with pytest.raises(MisconfiguredError) as caught:
        provider.revoke(revoke_spec(spec, recorder.account, result.username), recorder)
    assert "missing application permission User.DeleteRestore.All" in caught.value.message
    assert OTHER.tenant_id in caught.value.message
    # Not taken for replication lag: one refused purge, then the token was asked for again.
    assert emulator.statuses("DELETE", "/directory/deletedItems/") == [403]
    assert "user_purged" not in recorder.steps

    emulator.state.set_app(OTHER.tenant_id, roles=CONSENTED_PERMISSIONS)
    emulator.admin.delete("/_admin/tokens").raise_for_status()
    provider.revoke(revoke_spec(spec, recorder.account, result.username), recorder)
    assert recorder.steps[-1] == "verified_revoked"
    assert "user_purged" in recorder.steps
