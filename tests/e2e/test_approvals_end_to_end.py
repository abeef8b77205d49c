"""Approvals through the API, the worker and the emulators, on SQLite and PostgreSQL: the
customer's policy, a request that waits with no account in Graph, self-approval refused, two
approvals, the granted note naming the approvers; rejection, cancellation, expiry on the
injected clock, a ticket closed while pending; the cap on customers held at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.seed import CUSTOMERS

from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO, NORTHWIND = CUSTOMERS[0], CUSTOMERS[1]
APPROVERS = ("approver.one@msp.example", "approver.two@msp.example")


def fresh_ticket(system: System, summary: str = "Approve the firewall change") -> str:
    return str(system.world.ground_truth().add_ticket(PEDRO.psa_company_id, summary))


def request(api: httpx.Client, ticket: str, customer: str = "pedroaviary") -> httpx.Response:
    return api.post(
        "/grants",
        json={
            "customer": customer, "identity_provider": "m365", "ticket_id": ticket,
            "duration_minutes": 30, "reason": "Change the Conditional Access policy",
        },
    )  # fmt: skip


def approver_tokens(system: System) -> dict[str, str]:
    tokens = {}
    with system.client("admin") as api:
        for name in APPROVERS:
            made = api.post("/users", json={"username": name, "role": "approver"})
            assert made.status_code == 201, made.text
            tokens[name] = made.json()["token"]
    return tokens


def as_user(system: System, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{system.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def put_policy(system: System, **policy: Any) -> httpx.Response:
    with system.client("admin") as api:
        return api.put("/customers/pedroaviary/policy", json=policy)


def graph_has_user(system: System, upn: str) -> bool:
    with system.graph(PEDRO.tenant_id) as graph:
        found = graph.get("/users", params={"$filter": f"userPrincipalName eq '{upn}'"})
        found.raise_for_status()
        return bool(found.json()["value"])


def notes_with(system: System, ticket: str, text: str) -> list[str]:
    return [n for n in system.ticket_notes(ticket) if text in n]


def test_the_policy_is_an_admins_and_names_a_bad_field(clocked_system: System) -> None:
    system = clocked_system
    with system.client("admin") as api:
        assert api.get("/customers/pedroaviary/policy").json() == {
            "customer": "pedroaviary", "max_duration_minutes": 480, "approval_required": [],
            "approvals_needed": 1, "approval_timeout_minutes": 60,
        }  # fmt: skip
    for body, field in (
        ({"approvals_needed": 0}, "approvals_needed"),
        ({"approval_required": ["okta"]}, "approval_required"),
        ({"approval_timeout_minutes": "soon"}, "approval_timeout_minutes"),
        ({"approvals": 2}, "approvals"),
    ):
        refused = put_policy(system, **body)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == [field]
    saved = put_policy(system, approval_required=["m365"], approvals_needed=2)
    assert saved.status_code == 200, saved.text
    assert saved.json()["approval_required"] == ["m365"] and saved.json()["approvals_needed"] == 2
    with system.client() as api:
        assert api.get("/customers/pedroaviary/policy").status_code == 403
        assert api.put("/customers/pedroaviary/policy", json={}).status_code == 403
    with system.client("admin") as api:
        audit = api.get("/audit", params={"customer": "pedroaviary"}).json()["items"]
    assert [e["kind"] for e in audit].count("customer.policy_changed") == 1


def test_two_approvals_then_provisioning_and_the_note_names_both(clocked_system: System) -> None:
    system = clocked_system
    tokens = approver_tokens(system)
    assert put_policy(system, approval_required=["m365"], approvals_needed=2).status_code == 200
    ticket = fresh_ticket(system)
    with system.client() as api:
        response = request(api, ticket)
        assert response.status_code == 202, response.text
        created = response.json()
        assert created["state"] == "pending_approval" and created["password"]
        assert created["approvals_needed"] == 2 and created["approval_expires_at"]
        # The requester is a technician: never an approver, of their own request or another.
        assert api.post(f"/grants/{created['id']}/approve", json={}).status_code == 403
    grant_id, upn = created["id"], created["username"]
    assert not graph_has_user(system, upn)
    first, second = (as_user(system, tokens[name]) for name in APPROVERS)
    with first, second:
        once = first.post(f"/grants/{grant_id}/approve", json={"comment": "ticket checked"})
        assert once.status_code == 200, once.text
        assert once.json()["state"] == "pending_approval"
        assert first.post(f"/grants/{grant_id}/approve").status_code == 409
        assert not graph_has_user(system, upn)
        twice = second.post(f"/grants/{grant_id}/approve")
        assert twice.status_code == 200, twice.text
        assert twice.json()["state"] == "provisioning"
        assert [a["by"] for a in twice.json()["approvals"]] == list(APPROVERS)
    system.wait_state(grant_id, "active")
    assert graph_has_user(system, upn)
    (note,) = wait_for(lambda: notes_with(system, ticket, "Approved by"), what="the granted note")
    assert f"Approved by {APPROVERS[0]}, {APPROVERS[1]}." in note
    kinds = [e["kind"] for e in system.grant(grant_id)["events"]]
    assert kinds[:5] == [
        "grant.requested", "grant.pending_approval", "grant.approval_given", "grant.approved",
        "grant.provisioning",
    ]  # fmt: skip
    with system.client() as api:
        assert api.post(f"/grants/{grant_id}/revoke").status_code == 202
    system.wait_state(grant_id, "revoked")


def test_reject_cancel_expire_and_a_closed_ticket(
    clocked_system: System, clock: ManualClock
) -> None:
    system = clocked_system
    tokens = approver_tokens(system)
    policy = {"approval_required": ["m365"], "approval_timeout_minutes": 30}
    assert put_policy(system, **policy).status_code == 200
    truth = system.world.ground_truth()
    approver = as_user(system, tokens[APPROVERS[0]])
    with system.client() as api, approver:
        # A ticket closed while pending: approval is refused naming ticket_id, nothing moves.
        closed = fresh_ticket(system)
        pending = request(api, closed).json()
        truth.close_ticket(int(closed))
        refused = approver.post(f"/grants/{pending['id']}/approve")
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["ticket_id"]
        assert system.grant(pending["id"])["state"] == "pending_approval"
        # Rejection: a comment is required; the ticket is told once.
        blank = approver.post(f"/grants/{pending['id']}/reject", json={"comment": " "})
        assert blank.status_code == 422
        assert [e["field"] for e in blank.json()["errors"]] == ["comment"]
        rejected = approver.post(f"/grants/{pending['id']}/reject", json={"comment": "closed"})
        assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
        wait_for(lambda: notes_with(system, closed, "was rejected by"), what="rejection note")
        # Cancellation by the requester.
        ticket = fresh_ticket(system)
        waiting = request(api, ticket).json()
        cancelled = api.post(f"/grants/{waiting['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert api.post(f"/grants/{waiting['id']}/cancel").status_code == 409
        # No decision in time: the worker expires it on the injected clock.
        late = request(api, ticket).json()
    clock.advance(timedelta(minutes=31))
    system.wait_state(late["id"], "expired")
    wait_for(lambda: notes_with(system, ticket, "expired without enough approvals"), what="note")
    for grant in (pending, waiting, late):
        assert not graph_has_user(system, grant["username"])
    assert len(notes_with(system, closed, "was rejected by")) == 1
    assert len(notes_with(system, ticket, "expired without enough approvals")) == 1


def test_the_cap_on_customers_held_at_once_is_a_409_naming_the_limit(tmp_path: Path) -> None:
    system = start_system(tmp_path, with_worker=False, max_active_grants_per_user=1)
    try:
        with system.client() as api:
            assert request(api, PEDRO.open_ticket_ids[0]).status_code == 202
            refused = request(api, NORTHWIND.open_ticket_ids[0], customer="northwind")
        assert refused.status_code == 409, refused.text
        assert "JITADMIN_MAX_ACTIVE_GRANTS_PER_USER" in refused.json()["detail"]
        assert "limit is 1" in refused.json()["detail"]
    finally:
        stop_system(system)
