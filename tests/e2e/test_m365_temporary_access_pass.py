"""A Temporary Access Pass for the technician, through the API, the worker and the Graph
emulator: chosen per customer (m365_credential: tap), shown once to the requester, revealable
by an admin; a tenant whose TAP policy is disabled falls back to the password, visibly."""

from __future__ import annotations

from typing import Any

from jitadmin.emulators.seed import CUSTOMERS

from support.m365_tap import choose_tap
from support.system import System

PEDRO = CUSTOMERS[0]


def request_body() -> dict[str, Any]:
    return {
        "customer": "pedroaviary", "identity_provider": "m365",
        "ticket_id": PEDRO.open_ticket_ids[0],
        "duration_minutes": 30, "reason": "Register the new admin's MFA",
    }  # fmt: skip


def stored_pass(system: System, upn: str) -> dict[str, Any] | None:
    user = system.world.graph.find_user(PEDRO.tenant_id, upn)
    assert user is not None
    return user.temporary_access_pass


def test_a_tap_is_shown_once_to_the_requester_and_revealable_by_an_admin(system: System) -> None:
    findings = choose_tap(system)
    assert "Temporary Access Pass enabled (lifetime 60-480 minutes)" in findings
    with system.client() as api:
        created = api.post("/grants", json=request_body()).json()
        assert created["credential"] == "password"  # nothing issued yet: the pass comes later
        active = system.wait_state(created["id"], "active")
        assert active["credential"] == "temporary_access_pass"
        assert active["credential_notice"] is None
        shown = api.post(f"/grants/{created['id']}/temporary-access-pass")
        assert shown.status_code == 200, shown.text
        secret = shown.json()["temporary_access_pass"]
        stored = stored_pass(system, created["username"])
        assert stored is not None
        assert secret == stored["temporaryAccessPass"]
        assert stored["lifetimeInMinutes"] == 60  # 30 minutes, raised to the policy's minimum
        again = api.post(f"/grants/{created['id']}/temporary-access-pass")
        assert again.status_code == 409
        assert "already shown" in again.json()["detail"]
        assert secret not in str(system.grant(created["id"]))
    with system.client("admin") as admin_api:
        # Only the requester is shown it; an admin reveals it, with a reason, audited.
        not_theirs = admin_api.post(f"/grants/{created['id']}/temporary-access-pass")
        assert not_theirs.status_code == 403
        revealed = admin_api.post(
            f"/grants/{created['id']}/password", json={"reason": "tech closed the tab"}
        )
        assert revealed.status_code == 200, revealed.text
        assert revealed.json()["password"] == secret
        kinds = [e["kind"] for e in admin_api.get("/audit", params={"grant_id": created["id"]})
                 .json()["items"]]  # fmt: skip
        assert "grant.temporary_access_pass_shown" in kinds
        assert "grant.password_revealed" in kinds
    with system.client() as api:
        assert api.post(f"/grants/{created['id']}/revoke").status_code == 202
    system.wait_state(created["id"], "revoked")
    assert system.world.graph.find_user(PEDRO.tenant_id, created["username"]) is None


def test_a_disabled_tap_policy_falls_back_to_the_password_with_a_notice(system: System) -> None:
    system.world.graph.set_tap_policy(PEDRO.tenant_id, state="disabled")
    findings = choose_tap(system)
    assert any("Temporary Access Pass is disabled" in f and "password" in f for f in findings)
    with system.client() as api:
        created = api.post("/grants", json=request_body()).json()
        active = system.wait_state(created["id"], "active")
        assert active["credential"] == "password"
        assert "policy is disabled" in active["credential_notice"]
        refused = api.post(f"/grants/{created['id']}/temporary-access-pass")
        assert refused.status_code == 409
        assert "sign in with the password" in refused.json()["detail"].lower()
    assert stored_pass(system, created["username"]) is None
    with system.client("admin") as admin_api:
        revealed = admin_api.post(f"/grants/{created['id']}/password", json={"reason": "check"})
        assert revealed.json()["password"] == created["password"]
