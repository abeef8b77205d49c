"""Request → active → noted → expiry → revoked → noted, through the API, the worker and the
emulators' own vendor APIs (what a real client of Graph and ConnectWise would see)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.seed import CUSTOMERS

from support.system import System
from support.waiting import wait_for

GA = "62e90394-69f5-4237-9190-012177145e10"
PEDRO = CUSTOMERS[0]
GRANTED = "is now enabled and has been added to the Global Admin role."


def request_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": "pedroaviary", "identity_provider": "m365",
        "ticket_id": PEDRO.open_ticket_ids[0],
        "duration_minutes": 30, "reason": "Fix the Conditional Access lockout",
    }  # fmt: skip
    body.update(changes)
    return body


def graph_user(system: System, upn: str) -> dict[str, Any] | None:
    with system.graph(PEDRO.tenant_id) as graph:
        response = graph.get(
            "/users",
            params={
                "$filter": f"userPrincipalName eq '{upn}'",
                "$select": "id,userPrincipalName,accountEnabled,employeeType",
            },
        )
        response.raise_for_status()
        users = response.json()["value"]
    return users[0] if users else None


def role_assignments(system: System, principal_id: str) -> list[dict[str, Any]]:
    with system.graph(PEDRO.tenant_id) as graph:
        response = graph.get(
            "/roleManagement/directory/roleAssignments",
            params={"$filter": f"principalId eq '{principal_id}'"},
        )
        response.raise_for_status()
        return list(response.json()["value"])


def deleted_user_ids(system: System) -> set[str]:
    with system.graph(PEDRO.tenant_id) as graph:
        response = graph.get(
            "/directory/deletedItems/microsoft.graph.user", params={"$select": "id"}
        )
        response.raise_for_status()
        return {u["id"] for u in response.json()["value"]}


def notes_with(system: System, ticket: str, text: str) -> list[str]:
    return [n for n in system.ticket_notes(ticket) if text in n]


def test_grant_lifecycle_with_an_injected_clock(clocked_system: System, clock: ManualClock) -> None:
    system = clocked_system
    ticket = PEDRO.open_ticket_ids[0]
    with system.client() as api:
        response = api.post("/grants", json=request_body())
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["state"] == "provisioning"
    assert created["requester"] == "example.user@msp.example"
    password = created["password"]
    upn = created["username"]
    assert upn.endswith("@pedroaviary.onmicrosoft.com")

    active = system.wait_state(created["id"], "active")
    assert "password" not in active
    user = graph_user(system, upn)
    assert (
        user is not None and user["accountEnabled"] is True and user["employeeType"] == "jitadmin"
    )
    assignments = role_assignments(system, user["id"])
    assert [(a["roleDefinitionId"], a["directoryScopeId"]) for a in assignments] == [(GA, "/")]
    granted = wait_for(
        lambda: notes_with(system, ticket, f"The account {upn} {GRANTED}"), what="grant note"
    )
    assert len(granted) == 1
    assert f"jitadmin:{created['id']}:granted" in granted[0]
    assert "Fix the Conditional Access lockout" in granted[0]
    assert password not in "".join(system.ticket_notes(ticket))

    # Nothing happens before expiry...
    clock.advance(timedelta(minutes=29))
    assert system.grant(created["id"])["state"] == "active"
    # ...and revocation follows it.
    clock.advance(timedelta(minutes=2))
    revoked = system.wait_state(created["id"], "revoked")
    assert revoked["revoked_at"] is not None
    assert graph_user(system, upn) is None
    assert user["id"] not in deleted_user_ids(system)
    assert role_assignments(system, user["id"]) == []
    revoke_notes = wait_for(
        lambda: notes_with(system, ticket, f"jitadmin:{created['id']}:revoked"), what="revoke note"
    )
    assert len(revoke_notes) == 1
    assert (
        f"Global Admin has been removed from the account {upn} and the account has been "
        "deleted. Access tokens already issued to it can stay valid for up to about 90 minutes"
    ) in revoke_notes[0]
    assert len(notes_with(system, ticket, f"The account {upn} {GRANTED}")) == 1

    kinds = [e["kind"] for e in system.grant(created["id"])["events"]]
    for expected in (
        "grant.requested",
        "grant.provisioning",
        "grant.active",
        "grant.revoking",
        "grant.revoked",
    ):
        assert expected in kinds
    with system.client("admin") as api:
        gone = api.post(f"/grants/{created['id']}/password", json={"reason": "after the end"})
    assert gone.status_code == 409


@pytest.mark.slow
def test_a_real_one_minute_expiry(system: System) -> None:
    with system.client() as api:
        created = api.post("/grants", json=request_body(duration_minutes=1)).json()
    active = system.wait_state(created["id"], "active")
    assert active["expires_at"] > active["activated_at"]
    revoked = system.wait_state(created["id"], "revoked", timeout=120)
    assert revoked["revoked_at"] >= active["expires_at"]
    assert graph_user(system, created["username"]) is None


def test_revoke_now_extend_and_admin_reveal(system: System) -> None:
    with system.client() as api:
        created = api.post("/grants", json=request_body()).json()
        system.wait_state(created["id"], "active")
        again = api.post("/grants", json=request_body(ticket_id=PEDRO.open_ticket_ids[1]))
        assert again.status_code == 409
        assert f"/grants/{created['id']}/extend" in again.json()["detail"]
        extended = api.post(f"/grants/{created['id']}/extend", json={"minutes": 15})
        assert extended.status_code == 200, extended.text
        assert extended.json()["expires_at"] > created["expires_at"]
        assert api.post(f"/grants/{created['id']}/password", json={}).status_code == 403
    with system.client("admin") as admin_api:
        revealed = admin_api.post(
            f"/grants/{created['id']}/password", json={"reason": "tech lost it"}
        )
        assert revealed.status_code == 200
        assert revealed.json()["password"] == created["password"]
        audit = admin_api.get("/audit", params={"grant_id": created["id"]}).json()["items"]
        assert any(e["kind"] == "grant.password_revealed" and e["actor"] == "admin" for e in audit)
    wait_for(
        lambda: notes_with(system, created["ticket_id"], f"jitadmin:{created['id']}:extended-1"),
        what="extend note",
    )
    with system.client() as api:
        assert api.post(f"/grants/{created['id']}/revoke").status_code == 202
    system.wait_state(created["id"], "revoked")
    assert graph_user(system, created["username"]) is None
