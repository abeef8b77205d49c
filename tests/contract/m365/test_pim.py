"""PIM: the emulator's role assignment schedule requests do what Graph does, and the M365
adapter assigns Global Administrator with a tenant-side end where the tenant has P2, falls back
to a plain assignment (visibly) where it has not, moves the end on extend and still revokes.

https://learn.microsoft.com/graph/api/rbacapplication-post-roleassignmentschedulerequests
(actions adminAssign, adminUpdate, adminExtend, adminRemove; scheduleInfo.expiration);
https://learn.microsoft.com/graph/api/resources/expirationpattern; the 400
AadPremiumLicenseRequired without Entra ID P2 as quoted in maester365/maester#1421;
RoleAssignmentExists / RoleAssignmentDoesNotExist as quoted in Microsoft365DSC#5532.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from jitadmin.adapters.m365 import pim
from jitadmin.emulators.graph.model import CONSENTED_PERMISSIONS
from jitadmin.emulators.graph.pim_state import RoleSchedule

from support.m365 import (
    GA,
    OTHER,
    TENANT,
    CrashError,
    Emulator,
    ProviderFactory,
    Recorder,
    access,
    provider_factory,
    reset,
    resume,
    revoke_spec,
    serve_emulator,
)

REQUESTS = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
SCHEDULES = "/v1.0/roleManagement/directory/roleAssignmentSchedules"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator() as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(emulator: Emulator) -> Iterator[None]:
    reset(emulator)
    emulator.state.set_p2(TENANT, True)
    yield
    emulator.state.reset_clock()
    emulator.state.set_p2(TENANT, False)
    emulator.state.set_app(TENANT, roles=CONSENTED_PERMISSIONS)


@pytest.fixture
def make_provider(emulator: Emulator) -> Iterator[ProviderFactory]:
    with provider_factory(emulator) as make:
        yield make


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def call(emulator: Emulator, method: str, path: str, tenant: str = TENANT,
         **kw: Any) -> httpx.Response:  # fmt: skip
    token = emulator.state.issue_token(tenant)
    return emulator.admin.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)


def user(emulator: Emulator, alias: str, tenant: str = TENANT) -> str:
    domain = next(t for t in emulator.state.all_tenants() if t.id == tenant).domains[0].id
    return emulator.state.add_user(tenant, f"{alias}@{domain}")


def request(principal: str, action: str = "adminAssign", minutes: int = 60,
            **extra: Any) -> dict[str, Any]:  # fmt: skip
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "action": action, "principalId": principal, "roleDefinitionId": GA,
        "directoryScopeId": "/", "justification": "contract test",
        "scheduleInfo": {"startDateTime": z(now), "expiration": {
            "type": "afterDateTime", "endDateTime": z(now + timedelta(minutes=minutes))}},
    }  # fmt: skip
    body.update(extra)
    return body


def holds_ga(emulator: Emulator, principal: str, tenant: str = TENANT) -> bool:
    return any(
        a.principal_id == principal and a.role_definition_id == GA
        for a in emulator.state.assignments(tenant)
    )


# -- the emulator does what Graph does -----------------------------------------------------------


def test_without_p2_schedule_requests_answer_aad_premium_license_required(
    emulator: Emulator,
) -> None:
    principal = user(emulator, "nop2", OTHER.tenant_id)
    made = call(emulator, "POST", REQUESTS, OTHER.tenant_id, json=request(principal))
    assert made.status_code == 400
    assert made.json()["error"]["code"] == "AadPremiumLicenseRequired"
    listed = call(emulator, "GET", SCHEDULES, OTHER.tenant_id)
    assert listed.status_code == 400
    assert listed.json()["error"]["code"] == "AadPremiumLicenseRequired"
    assert not holds_ga(emulator, principal, OTHER.tenant_id)


def test_admin_assign_makes_an_active_assignment_with_its_end(emulator: Emulator) -> None:
    principal = user(emulator, "assign")
    made = call(emulator, "POST", REQUESTS, json=request(principal, minutes=90))
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["status"] == "Provisioned" and body["action"] == "adminAssign"
    assert body["scheduleInfo"]["expiration"]["type"] == "afterDateTime"
    assert holds_ga(emulator, principal)
    listed = call(emulator, "GET", SCHEDULES,
                  params={"$filter": f"principalId eq '{principal}'"}).json()["value"]  # fmt: skip
    assert [s["id"] for s in listed] == [body["targetScheduleId"]]
    again = call(emulator, "POST", REQUESTS, json=request(principal))
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "RoleAssignmentExists"


def test_the_assignment_disappears_at_its_end(emulator: Emulator) -> None:
    principal = user(emulator, "expiry")
    assert call(emulator, "POST", REQUESTS, json=request(principal, minutes=30)).status_code == 201
    emulator.state.advance_clock(29 * 60)
    assert holds_ga(emulator, principal)
    emulator.state.advance_clock(2 * 60)
    assert not holds_ga(emulator, principal)
    assert not [s for s in emulator.state.schedules(TENANT) if s.principal_id == principal]


def test_admin_update_moves_the_end(emulator: Emulator) -> None:
    principal = user(emulator, "update")
    call(emulator, "POST", REQUESTS, json=request(principal, minutes=30)).raise_for_status()
    moved = call(emulator, "POST", REQUESTS, json=request(principal, "adminUpdate", minutes=120))
    assert moved.status_code == 201, moved.text
    emulator.state.advance_clock(60 * 60)
    assert holds_ga(emulator, principal)
    emulator.state.advance_clock(61 * 60)
    assert not holds_ga(emulator, principal)


def test_admin_remove_ends_it_and_then_there_is_nothing_to_remove(emulator: Emulator) -> None:
    principal = user(emulator, "remove")
    call(emulator, "POST", REQUESTS, json=request(principal)).raise_for_status()
    removed = call(emulator, "POST", REQUESTS, json=request(principal, "adminRemove"))
    assert removed.status_code == 201 and removed.json()["status"] == "Revoked"
    assert not holds_ga(emulator, principal)
    again = call(emulator, "POST", REQUESTS, json=request(principal, "adminRemove"))
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "RoleAssignmentDoesNotExist"


def test_an_end_in_the_past_fails_the_expiration_rule(emulator: Emulator) -> None:
    principal = user(emulator, "past")
    made = call(emulator, "POST", REQUESTS, json=request(principal, minutes=-5))
    assert made.status_code == 400
    assert made.json()["error"]["code"] == "RoleAssignmentRequestPolicyValidationFailed"


def test_schedule_requests_need_role_management_permission(emulator: Emulator) -> None:
    principal = user(emulator, "perm")
    emulator.state.set_app(TENANT, roles=["User.ReadWrite.All"])
    made = call(emulator, "POST", REQUESTS, json=request(principal))
    assert made.status_code == 403
    assert not holds_ga(emulator, principal)


# -- the adapter copes -----------------------------------------------------------------------


def schedule_of(emulator: Emulator, principal: str) -> RoleSchedule:
    found = [s for s in emulator.state.schedules(TENANT) if s.principal_id == principal]
    assert len(found) == 1
    return found[0]


def test_a_p2_tenant_gets_a_time_bound_assignment_ending_after_the_grant(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    idp = make_provider()
    assert pim.AVAILABLE in idp.check()
    spec = access()
    recorder = Recorder()
    result = idp.grant(spec, recorder)
    user_id = result.account["user_id"]
    assert result.account["role_assignment"] == "pim"
    assert "role_notice" not in result.account
    end = schedule_of(emulator, user_id).end
    assert end is not None
    assert abs((end - (spec.expires_at + pim.MARGIN)).total_seconds()) <= 1
    # Extending moves the tenant's end with the grant's.
    later = replace(resume(spec, recorder.account), expires_at=spec.expires_at + timedelta(hours=2))
    idp.extend(later)
    moved = schedule_of(emulator, user_id).end
    assert moved is not None
    assert abs((moved - (later.expires_at + pim.MARGIN)).total_seconds()) <= 1
    # Revocation ends it through PIM, then goes on as always.
    idp.revoke(revoke_spec(spec, recorder.account, result.username), Recorder())
    assert not holds_ga(emulator, user_id)
    assert not [s for s in emulator.state.schedules(TENANT) if s.principal_id == user_id]
    actions = [e["body"]["action"] for e in emulator.journal()
               if e["path"].endswith("roleAssignmentScheduleRequests")]  # fmt: skip
    assert actions == ["adminAssign", "adminUpdate", "adminRemove"]
    assert emulator.state.find_user(TENANT, user_id) is None


def test_a_tenant_without_p2_falls_back_to_a_plain_assignment_visibly(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    emulator.state.set_p2(TENANT, False)
    idp = make_provider()
    assert pim.NO_P2_NOTICE in idp.check()
    spec = access()
    recorder = Recorder()
    result = idp.grant(spec, recorder)
    assert result.account["role_assignment"] == "direct"
    assert result.account["role_notice"] == pim.NO_P2_NOTICE
    assert holds_ga(emulator, result.account["user_id"])
    idp.revoke(revoke_spec(spec, recorder.account, result.username), Recorder())
    assert not holds_ga(emulator, result.account["user_id"])


def test_the_role_ends_in_the_tenant_even_if_jitadmin_is_gone_and_revoke_still_completes(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    # jitadmin's clock and the tenant's move on together (jitadmin was away meanwhile).
    idp = make_provider(now=lambda: datetime.now(UTC) + emulator.state.clock_offset)
    spec = access()
    recorder = Recorder()
    result = idp.grant(spec, recorder)
    user_id = result.account["user_id"]
    emulator.state.advance_clock((spec.expires_at - datetime.now(UTC)).total_seconds() + 16 * 60)
    assert not holds_ga(emulator, user_id)  # Entra ended it; the account is still there
    assert emulator.state.find_user(TENANT, user_id) is not None
    idp.revoke(revoke_spec(spec, recorder.account, result.username), Recorder())
    assert emulator.state.find_user(TENANT, user_id) is None


def test_pim_off_never_asks_for_a_schedule(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    idp = make_provider(pim="off")
    result = idp.grant(access(), Recorder())
    assert result.account["role_assignment"] == "direct"
    assert not [e for e in emulator.journal() if "roleAssignmentSchedule" in e["path"]]


def test_a_grant_resumed_after_a_crash_still_knows_its_assignment_is_pim(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    idp = make_provider()
    spec = access()
    crashed = Recorder(crash_on="role_assigned", crash_before_commit=True)
    with pytest.raises(CrashError):
        idp.grant(spec, crashed)
    recorder = Recorder(account=dict(crashed.account))
    result = idp.grant(resume(spec, crashed.account), recorder)
    assert result.account["role_assignment"] == "pim"
    later = replace(resume(spec, recorder.account), expires_at=spec.expires_at + timedelta(hours=1))
    idp.extend(later)
    end = schedule_of(emulator, result.account["user_id"]).end
    assert end is not None
    assert abs((end - (later.expires_at + pim.MARGIN)).total_seconds()) <= 1
    idp.revoke(revoke_spec(spec, recorder.account, result.username), Recorder())
