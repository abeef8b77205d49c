"""The IdentityProvider contract, asked of Microsoft 365, Active Directory and the fake alike.

M365 runs the real adapter against the Graph emulator over HTTP, AD the real adapter against
the real Samba DC over LDAPS, and ``jitadmin.testing.FakeIdentityProvider`` in both of its
directory styles. Each must: provision a usable account in the admin role, treat a repeated
provision as the same one, take the access away on revoke and prove it, accept a second revoke,
list what holds admin rights for the drift reconciler, and map failures to the error taxonomy.
Outcomes are read as the tenant's administrator sees them (``support.identity_harness``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from jitadmin.core.errors import (
    AlreadyExistsError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)
from jitadmin.emulators import seed
from jitadmin.emulators.graph.app import create_graph_app
from jitadmin.emulators.runner import serve_in_thread
from jitadmin.ports import AccessResult, AccessSpec, RevokeSpec

from support.identity_harness import (
    AdHarness,
    FakeHarness,
    IdentityHarness,
    M365Harness,
    access_spec,
)

KINDS = ("m365", "ad", "fake-m365", "fake-ad")


class Steps:
    """A ProgressRecorder that keeps every step and merges its data, like the worker does."""

    def __init__(self, account: dict[str, Any] | None = None) -> None:
        self.names: list[str] = []
        self.account: dict[str, Any] = dict(account or {})

    def __call__(self, step: str, data: dict[str, Any]) -> None:
        self.names.append(step)
        self.account.update(data)


@pytest.fixture(scope="module")
def graph() -> Iterator[M365Harness]:
    creds = seed.SeedCredentials()
    app, state = create_graph_app(seed.CUSTOMERS, creds)
    server = serve_in_thread(app)
    with httpx.Client(base_url=server.url, timeout=10) as admin:
        admin.delete("/_admin/faults").raise_for_status()
    yield M365Harness(server.url, state, creds)
    server.stop()


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Iterator[IdentityHarness]:
    made: IdentityHarness
    if request.param == "m365":
        made = replace(request.getfixturevalue("graph"), _made=[])
    elif request.param == "ad":
        made = AdHarness(request.getfixturevalue("samba_dc"))
    else:
        made = FakeHarness(request.param.removeprefix("fake-"))
    yield made
    made.cleanup()


def granted(harness: IdentityHarness, spec: AccessSpec) -> tuple[AccessResult, Steps]:
    steps = Steps()
    return harness.provider().grant(spec, steps), steps


def revoke_spec(spec: AccessSpec, result: AccessResult, steps: Steps) -> RevokeSpec:
    """What the worker passes to revoke: the grant and everything its steps recorded."""
    return RevokeSpec(spec.grant_id, spec.requester, result.username, dict(steps.account))


# --- provision ------------------------------------------------------------------------------


def test_provision_gives_a_usable_account_in_the_admin_role(harness: IdentityHarness) -> None:
    spec = access_spec()
    provider = harness.provider()
    planned = provider.planned_username(spec.grant_id, spec.requester)
    result, steps = granted(harness, spec)
    assert result.username.lower() == planned.lower()
    assert harness.holds_admin(result.username)
    assert harness.signs_in(result.username, spec.password)
    assert steps.names[-1] == "verified_granted"
    # What progress recorded on the way agrees with the final account record.
    assert steps.account.items() <= result.account.items()


def test_a_second_provision_of_the_same_request_is_the_same_account(
    harness: IdentityHarness,
) -> None:
    spec = access_spec()
    first, steps = granted(harness, spec)
    again = Steps(steps.account)
    second = harness.provider().grant(replace(spec, account=dict(steps.account)), again)
    assert second == first
    assert again.names[-1] == "verified_granted"
    assert harness.holds_admin(second.username)
    assert harness.signs_in(second.username, spec.password)


def test_a_retry_that_lost_its_progress_adopts_the_account_it_made(
    harness: IdentityHarness,
) -> None:
    """A crash before the first step was committed: the retry knows nothing, finds it by name."""
    spec = access_spec()
    first, _ = granted(harness, spec)
    second, _ = granted(harness, spec)
    assert second.username == first.username
    assert harness.holds_admin(second.username)


def test_a_name_held_by_an_account_jitadmin_does_not_manage_is_refused(
    harness: IdentityHarness,
) -> None:
    spec = access_spec()
    provider = harness.provider()
    name = provider.planned_username(spec.grant_id, spec.requester)
    harness.add_foreign_account(name)
    with pytest.raises(AlreadyExistsError):
        provider.grant(spec, Steps())
    assert not harness.holds_admin(name)
    # Revoking that grant finds nothing of ours and leaves theirs alone.
    steps = Steps()
    provider.revoke(RevokeSpec(spec.grant_id, spec.requester, name), steps)
    assert steps.names == ["verified_revoked"]
    assert harness.exists(name)


def test_a_weak_password_is_rejected_without_echoing_it(harness: IdentityHarness) -> None:
    spec = access_spec(password="short1")
    with pytest.raises(RejectedError) as refused:
        harness.provider().grant(spec, Steps())
    assert "short1" not in str(refused.value)
    name = harness.provider().planned_username(spec.grant_id, spec.requester)
    assert not harness.holds_admin(name)


# --- revoke ---------------------------------------------------------------------------------


def test_revoke_takes_the_access_away_and_verifies_it(harness: IdentityHarness) -> None:
    spec = access_spec()
    result, steps = granted(harness, spec)
    harness.provider().revoke(revoke_spec(spec, result, steps), steps)
    assert steps.names[-1] == "verified_revoked"
    assert not harness.holds_admin(result.username)
    assert not harness.signs_in(result.username, spec.password)
    assert harness.exists(result.username) is not harness.deletes_on_revoke


def test_revoke_twice_is_fine(harness: IdentityHarness) -> None:
    spec = access_spec()
    result, steps = granted(harness, spec)
    provider = harness.provider()
    provider.revoke(revoke_spec(spec, result, steps), steps)
    again = Steps(steps.account)
    provider.revoke(revoke_spec(spec, result, steps), again)
    assert again.names[-1] == "verified_revoked"
    assert not harness.holds_admin(result.username)


def test_revoke_of_a_grant_that_created_nothing_verifies_nothing_exists(
    harness: IdentityHarness,
) -> None:
    spec = access_spec()
    steps = Steps()
    harness.provider().revoke(RevokeSpec(spec.grant_id, spec.requester, None), steps)
    assert steps.names == ["verified_revoked"]


def test_a_new_grant_after_revoke_gives_access_again(harness: IdentityHarness) -> None:
    first_spec = access_spec()
    first, steps = granted(harness, first_spec)
    harness.provider().revoke(revoke_spec(first_spec, first, steps), steps)
    second_spec = replace(access_spec(), requester=first_spec.requester)
    second, _ = granted(harness, second_spec)
    assert harness.holds_admin(second.username)
    assert harness.signs_in(second.username, second_spec.password)
    assert not harness.signs_in(second.username, first_spec.password)


# --- what the drift reconciler reads --------------------------------------------------------


def test_the_listing_shows_a_granted_account_and_no_rights_after_revoke(
    harness: IdentityHarness,
) -> None:
    spec = access_spec()
    result, steps = granted(harness, spec)
    provider = harness.provider()
    listed = [a for a in provider.list_managed() if a.username.lower() == result.username.lower()]
    assert [(a.tagged, a.enabled, a.holds_admin) for a in listed] == [(True, True, True)]
    provider.revoke(revoke_spec(spec, result, steps), steps)
    after = [a for a in provider.list_managed() if a.username.lower() == result.username.lower()]
    assert not any(a.holds_admin for a in after)
    assert len(after) == (0 if harness.deletes_on_revoke else 1)


def test_drift_lists_a_rogue_admin_jitadmin_did_not_create(harness: IdentityHarness) -> None:
    rogue = harness.add_rogue_admin()
    assert harness.holds_admin(rogue)
    listed = [a for a in harness.provider().list_managed() if a.username.lower() == rogue.lower()]
    # Listed as someone else's (untagged) admin where the target shows every admin; never as
    # jitadmin's own account, so the reconciler leaves it alone unless its ledger knows it.
    expected = [(False, True)] if harness.lists_untagged_admins else []
    assert [(a.tagged, a.holds_admin) for a in listed] == expected


# --- the connection and the error taxonomy --------------------------------------------------


def test_check_and_tenant_id_describe_the_target(harness: IdentityHarness) -> None:
    provider = harness.provider()
    findings = provider.check()
    assert findings and all(isinstance(f, str) and f for f in findings)
    assert provider.tenant_id().lower() == harness.tenant_id().lower()


def test_an_unreachable_target_is_transient(harness: IdentityHarness) -> None:
    provider = harness.unreachable()
    spec = access_spec()
    with pytest.raises(TransientError):
        provider.grant(spec, Steps())
    with pytest.raises(TransientError):
        provider.revoke(RevokeSpec(spec.grant_id, spec.requester, None), Steps())


def test_wrong_credentials_are_misconfiguration_and_never_shown(harness: IdentityHarness) -> None:
    wrong = "Wrong~Secret~" + uuid.uuid4().hex
    provider = harness.with_wrong_secret(wrong)
    for attempt in (provider.check, lambda: provider.grant(access_spec(), Steps())):
        with pytest.raises(MisconfiguredError) as refused:
            attempt()
        assert wrong not in str(refused.value)
        assert wrong not in repr(refused.value)
    assert wrong not in repr(provider)
