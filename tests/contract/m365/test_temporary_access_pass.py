"""Temporary Access Pass: the emulator's method and policy do what Graph does, and the M365
adapter issues a pass within the policy or falls back to the password, visibly.

https://learn.microsoft.com/graph/api/authentication-post-temporaryaccesspassmethods,
https://learn.microsoft.com/graph/api/resources/temporaryaccesspassauthenticationmethodconfiguration;
the 400 for a lifetime outside the policy as quoted in microsoft-graph-docs#12187.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from jitadmin.core.errors import MisconfiguredError
from jitadmin.emulators.graph.model import CONSENTED_PERMISSIONS, TapPolicy

from support.m365 import (
    OTHER,
    TENANT,
    Emulator,
    ProviderFactory,
    Recorder,
    access,
    provider_factory,
    reset,
    serve_emulator,
)

POLICY = "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations"
DEFAULTS = TapPolicy().__dict__


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator() as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(emulator: Emulator) -> Iterator[None]:
    reset(emulator)
    yield
    for tenant in (TENANT, OTHER.tenant_id):
        emulator.state.set_tap_policy(tenant, **DEFAULTS)
        emulator.state.set_app(tenant, roles=CONSENTED_PERMISSIONS)


@pytest.fixture
def make_provider(emulator: Emulator) -> Iterator[ProviderFactory]:
    with provider_factory(emulator) as make:
        yield make


def call(
    emulator: Emulator,
    method: str,
    path: str,
    roles: list[str] | None = None,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    token = emulator.state.issue_token(TENANT, roles=roles)
    return emulator.admin.request(
        method, f"/v1.0{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def new_user(emulator: Emulator, alias: str) -> str:
    domain = emulator.state.tenant(TENANT).domains[0].id
    return emulator.state.add_user(TENANT, f"{alias}-{datetime.now(UTC):%H%M%S%f}@{domain}")


def taps(user_id: str, emulator: Emulator, tenant: str = TENANT) -> dict[str, Any] | None:
    user = emulator.state.find_user(tenant, user_id)
    assert user is not None
    return user.temporary_access_pass


# --- the emulator does what Graph does ---------------------------------------------------


def test_the_policy_is_readable_with_entras_defaults(emulator: Emulator) -> None:
    for spelling in ("TemporaryAccessPass", "temporaryAccessPass"):
        body = call(emulator, "GET", f"{POLICY}/{spelling}").json()
        assert body["state"] == "enabled"
        assert (body["minimumLifetimeInMinutes"], body["maximumLifetimeInMinutes"]) == (60, 480)
        assert body["defaultLifetimeInMinutes"] == 60
        assert body["isUsableOnce"] is False
    refused = call(emulator, "GET", f"{POLICY}/TemporaryAccessPass", roles=["User.ReadWrite.All"])
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Authorization_RequestDenied"


def test_a_pass_is_created_once_per_user_and_a_new_one_replaces_it(emulator: Emulator) -> None:
    user_id = new_user(emulator, "tap1")
    path = f"/users/{user_id}/authentication/temporaryAccessPassMethods"
    first = call(emulator, "POST", path, body={"lifetimeInMinutes": 120, "isUsableOnce": False})
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["@odata.type"] == "#microsoft.graph.temporaryAccessPassAuthenticationMethod"
    assert len(created["temporaryAccessPass"]) == 8
    assert (created["lifetimeInMinutes"], created["isUsable"]) == (120, True)
    second = call(emulator, "POST", path, body={}).json()
    assert second["lifetimeInMinutes"] == 60  # the policy's default
    stored = taps(user_id, emulator)
    assert stored is not None
    assert stored["id"] == second["id"] != created["id"]


def test_creating_a_pass_needs_user_authentication_method_readwrite(emulator: Emulator) -> None:
    user_id = new_user(emulator, "tap2")
    path = f"/users/{user_id}/authentication/temporaryAccessPassMethods"
    refused = call(emulator, "POST", path, roles=["User.ReadWrite.All", "Directory.ReadWrite.All"],
                   body={})  # fmt: skip
    assert refused.status_code == 403
    assert taps(user_id, emulator) is None


@pytest.mark.parametrize("minutes", [59, 481])
def test_a_lifetime_outside_the_policy_is_refused(emulator: Emulator, minutes: int) -> None:
    user_id = new_user(emulator, "tap3")
    path = f"/users/{user_id}/authentication/temporaryAccessPassMethods"
    refused = call(emulator, "POST", path, body={"lifetimeInMinutes": minutes})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "badRequest"
    assert error["message"] == (
        "Invalid LifetimeInMinutes specified. The valid range between 60 and 480."
    )
    assert taps(user_id, emulator) is None


def test_a_disabled_policy_refuses_every_pass(emulator: Emulator) -> None:
    emulator.state.set_tap_policy(TENANT, state="disabled")
    user_id = new_user(emulator, "tap4")
    path = f"/users/{user_id}/authentication/temporaryAccessPassMethods"
    assert call(emulator, "POST", path, body={}).status_code == 400
    assert call(emulator, "GET", f"{POLICY}/TemporaryAccessPass").json()["state"] == "disabled"


# --- the adapter copes --------------------------------------------------------------------


def test_a_tap_grant_gets_a_pass_lasting_the_grant_within_the_policy(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    provider = make_provider(credential="tap")
    spec = access()  # 30 minutes: below the policy's minimum of 60
    result = provider.grant(spec, Recorder())
    stored = taps(result.account["user_id"], emulator)
    assert stored is not None
    assert result.temporary_access_pass == stored["temporaryAccessPass"]
    assert result.account["credential"] == "temporary_access_pass"
    assert result.account["tap_lifetime_minutes"] == stored["lifetimeInMinutes"] == 60
    secret = result.temporary_access_pass
    assert secret is not None
    assert secret not in repr(result)
    assert secret not in str(result.account)

    emulator.state.set_tap_policy(TENANT, minimum_lifetime=10, maximum_lifetime=90)
    longer = replace(access(), expires_at=datetime.now(UTC) + timedelta(minutes=45))
    assert provider.grant(longer, Recorder()).account["tap_lifetime_minutes"] == 45
    capped = replace(access(), expires_at=datetime.now(UTC) + timedelta(hours=3))
    assert provider.grant(capped, Recorder()).account["tap_lifetime_minutes"] == 90


def test_a_disabled_policy_falls_back_to_the_password_with_a_notice(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    emulator.state.set_tap_policy(TENANT, state="disabled")
    provider = make_provider(credential="tap")
    result = provider.grant(access(), Recorder())
    assert result.temporary_access_pass is None
    assert result.account["credential"] == "password"
    assert "policy is disabled" in result.account["credential_notice"]
    assert taps(result.account["user_id"], emulator) is None
    assert any("disabled" in finding for finding in provider.check())


def test_the_connection_test_describes_the_policy_and_its_permissions(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    findings = make_provider(credential="tap").check()
    assert "Temporary Access Pass enabled (lifetime 60-480 minutes)" in findings
    without = [p for p in CONSENTED_PERMISSIONS if p not in ("Policy.Read.All",
               "UserAuthenticationMethod.ReadWrite.All")]  # fmt: skip
    emulator.state.set_app(OTHER.tenant_id, roles=without)
    with pytest.raises(MisconfiguredError) as caught:
        make_provider(tenant_id=OTHER.tenant_id, credential="tap").check()
    assert "UserAuthenticationMethod.ReadWrite.All, Policy.Read.All" in caught.value.message
    # A password connection does not need them.
    make_provider(tenant_id=OTHER.tenant_id).check()
