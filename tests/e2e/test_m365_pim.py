"""PIM through the API, the worker and the Graph emulator: in a tenant with Entra ID P2,
Global Administrator is a time-bound active assignment (its end in the tenant follows the
grant's, extend moves it, revoke ends it); without P2 the grant falls back to a plain
assignment and says so. The connection test tells which applies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jitadmin.adapters.m365 import pim
from jitadmin.emulators.seed import CUSTOMERS

from support.system import System

PEDRO = CUSTOMERS[0]


def request_body() -> dict[str, Any]:
    return {
        "customer": "pedroaviary", "identity_provider": "m365",
        "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
        "reason": "Tenant-side expiry",
    }  # fmt: skip


def schedule_end(system: System, upn: str) -> datetime | None:
    user = system.world.graph.find_user(PEDRO.tenant_id, upn)
    assert user is not None
    found = [s for s in system.world.graph.schedules(PEDRO.tenant_id) if s.principal_id == user.id]
    return found[0].end if found else None


def test_a_p2_tenant_ends_global_admin_itself_and_extend_moves_the_end(system: System) -> None:
    system.world.graph.set_p2(PEDRO.tenant_id, True)
    with system.client("admin") as api:
        tested = api.post("/customers/pedroaviary/connections/m365/test")
        assert tested.status_code == 200, tested.text
        assert pim.AVAILABLE in tested.json()["findings"]
    with system.client() as api:
        created = api.post("/grants", json=request_body()).json()
        active = system.wait_state(created["id"], "active")
        assert active["role_assignment"] == "pim" and active["role_notice"] is None
        end = schedule_end(system, created["username"])
        expires = datetime.fromisoformat(active["expires_at"])
        assert end is not None and abs((end - (expires + pim.MARGIN)).total_seconds()) <= 1
        extended = api.post(f"/grants/{created['id']}/extend", json={"minutes": 30})
        assert extended.status_code == 200, extended.text
        new_expiry = datetime.fromisoformat(extended.json()["expires_at"])
        moved = schedule_end(system, created["username"])
        assert moved is not None and abs((moved - (new_expiry + pim.MARGIN)).total_seconds()) <= 1
        assert api.post(f"/grants/{created['id']}/revoke").status_code == 202
    system.wait_state(created["id"], "revoked")
    assert system.world.graph.find_user(PEDRO.tenant_id, created["username"]) is None
    assert not system.world.graph.schedules(PEDRO.tenant_id)


def test_without_p2_the_grant_is_a_plain_assignment_and_says_so(system: System) -> None:
    with system.client("admin") as api:
        findings = api.post("/customers/pedroaviary/connections/m365/test").json()["findings"]
        assert pim.NO_P2_NOTICE in findings
    with system.client() as api:
        created = api.post("/grants", json=request_body()).json()
        active = system.wait_state(created["id"], "active")
        assert active["role_assignment"] == "direct"
        assert active["role_notice"] == pim.NO_P2_NOTICE
        assert api.post(f"/grants/{created['id']}/revoke").status_code == 202
    system.wait_state(created["id"], "revoked")
