"""SIGKILL the worker process mid-provision and mid-revoke: after a restart the grant converges
and the ticket holds exactly one note per event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.emulators.seed import CUSTOMERS

from support.config import SECRET_KEY
from support.faults import HELD_MS, graph_admin, set_faults
from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


@pytest.fixture
def api_only(tmp_path: Path) -> Iterator[System]:
    running = start_system(tmp_path, with_worker=False)
    yield running
    stop_system(running)


class WorkerProcess:
    """`jitadmin worker` as a real separate process on the same database."""

    def __init__(self, system: System, log_path: Path) -> None:
        env = {
            **os.environ,
            "JITADMIN_DATABASE_URL": system.app.settings.effective_database_url,
            "JITADMIN_SECRET_KEY": SECRET_KEY,
            "JITADMIN_WORKER_LEASE_SECONDS": "2",
            "JITADMIN_WORKER_MAX_IDLE_SECONDS": "0.2",
            "JITADMIN_RETRY_BASE_SECONDS": "0.05",
            "JITADMIN_RETRY_CAP_SECONDS": "0.5",
            "JITADMIN_GRAPH_RETRY_BUDGET_SECONDS": "2",
            "JITADMIN_GRAPH_BACKOFF_BASE_SECONDS": "0.05",
        }
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jitadmin", "worker"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


def in_flight(system: System, method: str, path_part: str) -> bool:
    journal = httpx.get(f"{graph_admin(system)}/requests").json()
    entries = (
        journal if isinstance(journal, list) else journal.get("requests", journal.get("items", []))
    )
    return any(
        e["method"] == method and path_part in e["path"] and e["status"] is None for e in entries
    )


def users_named(system: System, upn: str) -> list[dict[str, Any]]:
    with system.graph(PEDRO.tenant_id) as graph:
        response = graph.get("/users", params={"$filter": f"userPrincipalName eq '{upn}'"})
        response.raise_for_status()
        return list(response.json()["value"])


def notes(system: System, ticket: str, marker: str) -> list[str]:
    return [n for n in system.ticket_notes(ticket) if marker in n]


@pytest.mark.slow
def test_sigkill_mid_provision_and_mid_revoke_converges(api_only: System, tmp_path: Path) -> None:
    system = api_only
    log = tmp_path / "worker.log"
    ticket = PEDRO.open_ticket_ids[0]

    # 1. Kill the worker while it waits for Graph to assign the role.
    set_faults(
        graph_admin(system),
        latency_ms=HELD_MS,
        match="POST /v1.0/roleManagement/directory/roleAssignments",
    )
    first = WorkerProcess(system, log)
    try:
        with system.client() as api:
            created = api.post("/grants", json={
                "customer": "pedroaviary", "identity_provider": "m365", "ticket_id": ticket,
                "duration_minutes": 30, "reason": "Crash test: restore mail flow",
            }).json()  # fmt: skip
        wait_for(
            lambda: in_flight(system, "POST", "roleAssignments"), what="role assignment in flight"
        )
        first.kill()
    finally:
        first.stop()
    set_faults(graph_admin(system))
    assert system.grant(created["id"])["state"] == "provisioning"

    second = WorkerProcess(system, log)
    try:
        system.wait_state(created["id"], "active", timeout=60)
        assert len(users_named(system, created["username"])) == 1
        wait_for(
            lambda: notes(system, ticket, f"jitadmin:{created['id']}:granted"), what="grant note"
        )

        # 2. Kill it again while it deletes the user during revocation.
        set_faults(graph_admin(system), latency_ms=HELD_MS, match="DELETE /v1.0/users/")
        with system.client() as api:
            assert api.post(f"/grants/{created['id']}/revoke").status_code == 202
        wait_for(
            lambda: in_flight(system, "DELETE", "/v1.0/users/"), what="user deletion in flight"
        )
        second.kill()
    finally:
        second.stop()
    set_faults(graph_admin(system))
    assert system.grant(created["id"])["state"] == "revoking"

    third = WorkerProcess(system, log)
    try:
        system.wait_state(created["id"], "revoked", timeout=60)
        wait_for(
            lambda: notes(system, ticket, f"jitadmin:{created['id']}:revoked"), what="revoke note"
        )
    finally:
        third.stop()

    assert users_named(system, created["username"]) == []
    assert len(notes(system, ticket, f"jitadmin:{created['id']}:granted")) == 1
    assert len(notes(system, ticket, f"jitadmin:{created['id']}:revoked")) == 1
    verify = subprocess.run(
        [sys.executable, "-m", "jitadmin", "audit", "verify"],
        env={**os.environ, "JITADMIN_DATABASE_URL": system.app.settings.effective_database_url,
             "JITADMIN_SECRET_KEY": SECRET_KEY},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert "audit chain intact" in verify.stdout
