"""The same product on a real PostgreSQL server: lifecycle, audit chain, and workers racing."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.entrypoints.worker import Worker, WorkerOptions

from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


@pytest.fixture
def pg_system(tmp_path: Path, pg_url: str, clock: ManualClock) -> Iterator[System]:
    running = start_system(tmp_path, clock=clock, database_url=pg_url)
    yield running
    stop_system(running)


def grant_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "customer": "pedroaviary",
        "identity_provider": "m365",
        "ticket_id": PEDRO.open_ticket_ids[0],
        "duration_minutes": 30,
        "reason": "PostgreSQL lifecycle check",
    }
    body.update(changes)
    return body


def test_lifecycle_and_audit_chain_on_postgresql(pg_system: System, clock: ManualClock) -> None:
    system = pg_system
    assert system.app.database.engine.dialect.name == "postgresql"
    with system.client() as api:
        created = api.post("/grants", json=grant_body())
        assert created.status_code == 202, created.text
        grant = created.json()
        assert api.post("/grants", json=grant_body()).status_code == 409
    active = system.wait_state(grant["id"], "active")
    assert active["expires_at"].endswith("+00:00")
    clock.advance(timedelta(minutes=31))
    system.wait_state(grant["id"], "revoked")
    wait_for(
        lambda: [
            n for n in system.ticket_notes(grant["ticket_id"]) if f"{grant['id']}:revoked" in n
        ],
        what="revoke note",
    )
    with system.app.ctx.uow() as uow:
        checked, bad = uow.audit.verify()
    assert bad is None
    assert checked >= 6


def test_concurrent_requests_for_one_owner_create_one_grant(pg_system: System) -> None:
    system = pg_system
    statuses: list[int] = []

    def submit() -> None:
        with system.client() as api:
            statuses.append(api.post("/grants", json=grant_body()).status_code)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] + [409] * 5
    with system.app.ctx.uow() as uow:
        assert len(uow.grants.find()) == 1


def test_two_workers_race_and_each_step_runs_once(
    tmp_path: Path, pg_url: str, clock: ManualClock
) -> None:
    system = start_system(tmp_path, clock=clock, database_url=pg_url, with_worker=False)
    workers: list[Worker] = []
    try:
        with system.client("admin") as api:
            tokens = [
                api.post(
                    "/users", json={"username": f"racer{n}@msp.example", "role": "technician"}
                ).json()["token"]
                for n in range(8)
            ]
        ids = []
        for n, token in enumerate(tokens):
            customer = CUSTOMERS[n % 2]
            with system.client(None) as api:
                api.headers["Authorization"] = f"Bearer {token}"
                response = api.post(
                    "/grants",
                    json=grant_body(customer=customer.slug, ticket_id=customer.open_ticket_ids[0]),
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
        for _ in range(2):
            worker = Worker(
                system.app.ctx,
                WorkerOptions(concurrency=4, per_tenant=4, lease_s=30, max_idle_s=0.2),
            )
            clock.on_advance(worker.wake)
            workers.append(worker)
            worker.start()
        for grant_id in ids:
            system.wait_state(grant_id, "active")
        clock.advance(timedelta(minutes=31))
        for grant_id in ids:
            system.wait_state(grant_id, "revoked")
        with system.app.ctx.uow() as uow:
            events = uow.audit.entries(limit=100_000)
        per_grant = Counter((e.grant_id, e.kind) for e in events if e.grant_id)
        for grant_id in ids:
            # Each step exactly once, whichever worker ran it.
            for kind in (
                "grant.active",
                "grant.revoked",
                "account.user_created",
                "account.role_assigned",
            ):
                assert per_grant[(grant_id, kind)] == 1, (grant_id, kind)
        journal_posts = [
            e
            for e in system.world.graph.faults.journal_dicts()
            if e["method"] == "POST" and e["path"] == "/v1.0/users"
        ]
        assert len(journal_posts) == len(ids)
    finally:
        for worker in workers:
            worker.stop()
        stop_system(system)
