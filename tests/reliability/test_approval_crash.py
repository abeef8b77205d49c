"""SIGKILL the worker right after the approval's commit: provisioning still happens exactly
once (one account in Graph, one granted note naming the approver, each transition once).

The approval is committed by the API process; a separate crash worker (tests/support/
crash_worker.py) picks the grant up and kills itself right after the first provisioning step is
committed. A fresh worker then finishes it once the dead one's lease has run out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jitadmin.emulators.seed import CUSTOMERS

from support.system import System, start_system, stop_system
from support.waiting import wait_for
from support.worker_process import WorkerProcess

PEDRO = CUSTOMERS[0]
REQUESTER = "example.user@msp.example"  # the demo seed's technician
APPROVER = "approver.crash@msp.example"


@pytest.fixture
def api_only(tmp_path: Path, database_url: str) -> Iterator[System]:
    running = start_system(tmp_path, with_worker=False, database_url=database_url)
    yield running
    stop_system(running)


def users_named(system: System, upn: str) -> list[dict[str, Any]]:
    with system.graph(PEDRO.tenant_id) as graph:
        response = graph.get("/users", params={"$filter": f"userPrincipalName eq '{upn}'"})
        response.raise_for_status()
        return list(response.json()["value"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])  # a few seconds each
def test_a_worker_killed_right_after_an_approval_provisions_exactly_once(
    api_only: System, tmp_path: Path
) -> None:
    system = api_only
    ticket = PEDRO.open_ticket_ids[0]
    with system.client("admin") as api:
        policy = api.put("/customers/pedroaviary/policy", json={"approval_required": ["m365"]})
        assert policy.status_code == 200, policy.text
        made = api.post("/users", json={"username": APPROVER, "role": "approver"})
        approver_token = made.json()["token"]
    crashing = WorkerProcess(
        system, tmp_path / "crash.log", crash_after=(REQUESTER, "user_created")
    )
    try:
        with system.client() as api:
            created = api.post("/grants", json={
                "customer": "pedroaviary", "identity_provider": "m365", "ticket_id": ticket,
                "duration_minutes": 30, "reason": "Crash test: approve, then die",
            }).json()  # fmt: skip
        assert created["state"] == "pending_approval"
        with system.client(None) as api:
            api.headers["Authorization"] = f"Bearer {approver_token}"
            approved = api.post(f"/grants/{created['id']}/approve")
        assert approved.json()["state"] == "provisioning", approved.text
        crashing.wait_killed()
    finally:
        crashing.stop()
    assert system.grant(created["id"])["state"] == "provisioning"

    finishing = WorkerProcess(system, tmp_path / "finish.log")
    try:
        system.wait_state(created["id"], "active", timeout=60)
        marker = f"jitadmin:{created['id']}:granted"
        wait_for(
            lambda: [n for n in system.ticket_notes(ticket) if marker in n], what="granted note"
        )
    finally:
        finishing.stop()
    assert len(users_named(system, created["username"])) == 1
    granted = [n for n in system.ticket_notes(ticket) if marker in n]
    assert len(granted) == 1 and f"Approved by {APPROVER}." in granted[0]
    kinds = Counter(e["kind"] for e in system.grant(created["id"])["events"])
    assert kinds["grant.approved"] == kinds["grant.provisioning"] == kinds["grant.active"] == 1
