"""Graceful shutdown: a real `jitadmin worker` process gets SIGTERM while a step is in flight.
It finishes that work, hands back every claim and exits 0; the next worker carries on at once,
without waiting for any lease to run out. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from jitadmin.db.tables import GrantRow, OutboxRow
from jitadmin.emulators.seed import CUSTOMERS

from support.faults import HELD_MS, graph_admin, set_faults
from support.system import System, start_system, stop_system
from support.waiting import wait_for
from support.worker_process import WorkerProcess

PEDRO = CUSTOMERS[0]
LONG_LEASE = 600  # far longer than the test: any wait for a lease would time it out


@pytest.fixture
def api_only(tmp_path: Path, database_url: str) -> Iterator[System]:
    running = start_system(tmp_path, with_worker=False, database_url=database_url)
    yield running
    stop_system(running)


def graph_calls(system: System, method: str, path_part: str) -> list[dict[str, Any]]:
    return [
        e
        for e in system.world.graph.faults.journal_dicts()
        if e["method"] == method and path_part in e["path"]
    ]


def claims_held(system: System) -> int:
    with system.app.database.engine.connect() as conn:
        grants = conn.scalar(select(func.count()).where(GrantRow.claimed_by.is_not(None)))
        notes = conn.scalar(select(func.count()).where(OutboxRow.claimed_by.is_not(None)))
    return int(grants or 0) + int(notes or 0)


def notes_sent(system: System, grant_id: str) -> bool:
    with system.app.ctx.uow() as uow:
        messages = uow.outbox.for_grant(grant_id)
    return len(messages) == 2 and all(m.state == "sent" for m in messages)


def request(system: System) -> dict[str, Any]:
    with system.client() as api:
        response = api.post("/grants", json={
            "customer": "pedroaviary", "identity_provider": "m365",
            "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
            "reason": "Shutdown drill: patch the mail gateway",
        })  # fmt: skip
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def test_sigterm_finishes_the_step_in_flight_and_hands_back_its_claims(
    api_only: System, tmp_path: Path
) -> None:
    system = api_only
    # The role assignment is held until the faults are cleared, i.e. until SIGTERM has landed.
    set_faults(
        graph_admin(system),
        latency_ms=HELD_MS,
        match="POST /v1.0/roleManagement/directory/roleAssignments",
    )
    first = WorkerProcess(system, tmp_path / "first.log", worker_lease_seconds=LONG_LEASE)
    try:
        grant = request(system)
        wait_for(
            lambda: [
                e for e in graph_calls(system, "POST", "roleAssignments") if e["status"] is None
            ],
            what="the role assignment in flight",
        )
        first.send_sigterm()
        wait_for(lambda: "stopping" in first.tail(), what="the worker to take the SIGTERM")
        set_faults(graph_admin(system))
        assert first.wait_exit() == 0, first.tail()
    finally:
        first.stop()

    # The call in flight was completed, not abandoned: the role was assigned exactly once and
    # the grant finished; nothing is left claimed by the worker that went away.
    assert [e["status"] for e in graph_calls(system, "POST", "roleAssignments")] == [201]
    assert system.grant(grant["id"])["state"] == "active"
    assert claims_held(system) == 0
    with system.app.ctx.uow() as uow:
        pending = [m.marker for m in uow.outbox.for_grant(grant["id"]) if m.state == "pending"]
    assert pending == [f"jitadmin:{grant['id']}:granted"]  # the note waits for the next worker

    with system.client() as api:
        assert api.post(f"/grants/{grant['id']}/revoke").status_code == 202
    second = WorkerProcess(system, tmp_path / "second.log", worker_lease_seconds=LONG_LEASE)
    try:
        system.wait_state(grant["id"], "revoked", timeout=60)
        wait_for(lambda: notes_sent(system, grant["id"]), what="both notes delivered")
        assert second.terminate() == 0, second.tail()
    finally:
        second.stop()
    assert claims_held(system) == 0
    notes = Counter(
        event
        for note in system.ticket_notes(PEDRO.open_ticket_ids[0])
        for event in ("granted", "revoked")
        if f"jitadmin:{grant['id']}:{event}" in note
    )
    assert notes == {"granted": 1, "revoked": 1}
    with system.app.ctx.uow() as uow:
        kinds = Counter(e.kind for e in uow.audit.entries(grant_id=grant["id"]))
        assert uow.audit.verify()[1] is None
    assert kinds["account.role_assigned"] == 1 and kinds["grant.active"] == 1


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite: one worker by design
def test_two_worker_processes_share_the_due_grants_and_run_each_step_once(
    api_only: System, tmp_path: Path
) -> None:
    system = api_only
    # Slow role assignments, so both workers are busy at once.
    set_faults(
        graph_admin(system),
        latency_ms=300,
        match="POST /v1.0/roleManagement/directory/roleAssignments",
    )
    with system.client("admin") as admin:
        tokens = [
            admin.post(
                "/users", json={"username": f"racer{n}@msp.example", "role": "technician"}
            ).json()["token"]
            for n in range(6)
        ]
    ids = []
    for n, token in enumerate(tokens):
        customer = CUSTOMERS[n % 2]
        with httpx.Client(
            base_url=f"{system.url}/api/v1", headers={"Authorization": f"Bearer {token}"}
        ) as api:
            response = api.post("/grants", json={
                "customer": customer.slug, "identity_provider": "m365",
                "ticket_id": customer.open_ticket_ids[0], "duration_minutes": 30,
                "reason": "Two workers racing over the same due grants",
            })  # fmt: skip
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
    workers = [
        # Leases that cannot lapse on a busy machine: a lapse would legitimately repeat a step.
        WorkerProcess(system, tmp_path / f"racer-{n}.log", worker_lease_seconds=LONG_LEASE)
        for n in range(2)
    ]
    try:
        for grant_id in ids:
            system.wait_state(grant_id, "active", timeout=60)
        with system.client("admin") as admin:
            for grant_id in ids:
                assert admin.post(f"/grants/{grant_id}/revoke").status_code == 202
        for grant_id in ids:
            system.wait_state(grant_id, "revoked", timeout=60)
            wait_for(lambda g=grant_id: notes_sent(system, g), what="notes delivered")  # type: ignore[misc]
        for worker in workers:
            assert worker.terminate() == 0, worker.tail()
    finally:
        for worker in workers:
            worker.stop()
    with system.app.ctx.uow() as uow:
        events = uow.audit.entries(limit=100_000)
        assert uow.audit.verify()[1] is None
    per_grant = Counter((e.grant_id, e.kind) for e in events if e.grant_id)
    for grant_id in ids:
        for kind in (
            "grant.active", "grant.revoked", "account.user_created", "account.role_assigned",
            "account.role_removed", "account.user_deleted", "account.verified_revoked",
        ):  # fmt: skip
            assert per_grant[(grant_id, kind)] == 1, (grant_id, kind)
    calls = system.world.graph.faults.journal_dicts()
    assert sum(1 for e in calls if e["method"] == "POST" and e["path"] == "/v1.0/users") == 6
    assert sum(1 for e in calls if e["method"] == "POST" and "roleAssignments" in e["path"]) == 6
    assert claims_held(system) == 0
