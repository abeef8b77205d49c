"""Outages at the moment of expiry delay revocation; they never cancel it, and they are loud."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.seed import CUSTOMERS

from support.faults import HELD_MS, graph_admin, psa_admin, set_faults
from support.system import System, outbox_drained, start_system, stop_system
from support.waiting import wait_for

PEDRO, NORTHWIND = CUSTOMERS


def request(system: System, role: str = "technician", **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "customer": "pedroaviary", "identity_provider": "m365",
        "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
        "reason": "Outage drill: rotate the app secret",
    }  # fmt: skip
    payload.update(changes)
    with system.client(role) as api:
        response = api.post("/grants", json=payload)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def outbox_failed_once(system: System, grant_id: str) -> bool:
    with system.app.ctx.uow() as uow:
        return any(m.last_error and m.state == "pending" for m in uow.outbox.for_grant(grant_id))


def advance_until(system: System, clock: ManualClock, grant_id: str, state: str) -> dict[str, Any]:
    """Let simulated time pass a minute at a time until the grant reaches ``state``."""

    def step() -> dict[str, Any] | None:
        grant = system.grant(grant_id)
        if grant["state"] == state:
            return grant
        clock.advance(timedelta(minutes=1))
        return None

    return wait_for(step, what=f"grant {grant_id} to reach {state}")


def notes(system: System, ticket: str, marker: str) -> list[str]:
    return [n for n in system.ticket_notes(ticket) if marker in n]


@pytest.fixture
def clocked(tmp_path: Path, clock: ManualClock) -> Iterator[System]:
    running = start_system(tmp_path, clock=clock)
    yield running
    stop_system(running)


def test_psa_outage_never_blocks_revocation_and_notes_arrive_later(
    clocked: System, clock: ManualClock
) -> None:
    system = clocked
    grant = request(system)
    system.wait_state(grant["id"], "active")
    # Marked sent, not just visible on the ticket: otherwise it could still be pending below.
    wait_for(lambda: outbox_drained(system, grant["id"]), what="grant note delivered")

    set_faults(psa_admin(system), outage=True)
    clock.advance(timedelta(minutes=31))
    system.wait_state(grant["id"], "revoked")
    # The revoke note waits in the outbox while the PSA is down...
    with system.app.ctx.uow() as uow:
        pending = [m for m in uow.outbox.for_grant(grant["id"]) if m.state == "pending"]
    assert [m.marker for m in pending] == [f"jitadmin:{grant['id']}:revoked"]

    # ...and arrives, once, when it is back.
    set_faults(psa_admin(system))
    clock.advance(timedelta(minutes=5))
    wait_for(lambda: notes(system, grant["ticket_id"], f"{grant['id']}:revoked"), what="late note")
    clock.advance(timedelta(minutes=5))
    assert len(notes(system, grant["ticket_id"], f"{grant['id']}:revoked")) == 1


def test_note_committed_then_connection_dropped_is_not_doubled(
    clocked: System, clock: ManualClock
) -> None:
    system = clocked
    httpx.post(f"{psa_admin(system)}/drop_after_commit", json={"count": 1}).raise_for_status()
    grant = request(system)
    system.wait_state(grant["id"], "active")
    wait_for(lambda: outbox_failed_once(system, grant["id"]), what="the uncertain first post")
    clock.advance(timedelta(minutes=1))
    wait_for(lambda: outbox_drained(system, grant["id"]), what="outbox drained")
    assert len(notes(system, grant["ticket_id"], f"{grant['id']}:granted")) == 1


def test_graph_outage_at_expiry_turns_loud_then_recovers(
    clocked: System, clock: ManualClock
) -> None:
    system = clocked
    grant = request(system)
    active = system.wait_state(grant["id"], "active")

    set_faults(graph_admin(system), outage=True)
    clock.advance(timedelta(minutes=31))
    failed = advance_until(system, clock, grant["id"], "revoke_failed")
    assert failed["last_error"]
    assert "password" not in failed["last_error"].lower()
    metrics = system.metrics()
    assert "jitadmin_revoke_failed_grants 1.0" in metrics
    wait_for(
        lambda: notes(system, grant["ticket_id"], f"{grant['id']}:revoke_failed"), what="alarm note"
    )
    # The grant never claims to be revoked while Graph cannot confirm it.
    assert system.grant(grant["id"])["state"] == "revoke_failed"

    set_faults(graph_admin(system))
    revoked = advance_until(system, clock, grant["id"], "revoked")
    assert revoked["revoked_at"] > active["expires_at"]
    assert "jitadmin_revoke_failed_grants 0.0" in system.metrics()
    wait_for(
        lambda: notes(system, grant["ticket_id"], f"{grant['id']}:revoked"), what="revoke note"
    )


def test_throttling_with_retry_after_is_honoured(clocked: System, clock: ManualClock) -> None:
    system = clocked
    set_faults(graph_admin(system), error_status=429, retry_after_s=1, error_count=2)
    grant = request(system)
    advance_until(system, clock, grant["id"], "active")
    journal = httpx.get(f"{graph_admin(system)}/requests").json()
    assert [e["status"] for e in journal].count(429) == 2
    set_faults(graph_admin(system), error_status=429, retry_after_s=1, error_count=2)
    clock.advance(timedelta(minutes=31))
    advance_until(system, clock, grant["id"], "revoked")


def test_one_slow_tenant_does_not_hold_back_another(tmp_path: Path) -> None:
    system = start_system(tmp_path, worker_concurrency=4, worker_per_tenant=2)
    try:
        # Pedro's token endpoint hangs until the faults are cleared; Northwind's answers.
        set_faults(graph_admin(system), latency_ms=HELD_MS, match=f"POST /login/{PEDRO.tenant_id}/")
        techs = []
        with system.client("admin") as api:
            for n in range(3):
                created = api.post(
                    "/users", json={"username": f"tech{n}@msp.example", "role": "technician"}
                )
                techs.append(created.json()["token"])
        slow = []
        for token in techs:
            with httpx.Client(
                base_url=f"{system.url}/api/v1", headers={"Authorization": f"Bearer {token}"}
            ) as api:
                slow.append(api.post("/grants", json={
                    "customer": "pedroaviary", "identity_provider": "m365",
                    "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
                    "reason": "Slow tenant drill for Pedro",
                }).json())  # fmt: skip
        fast = request(system, customer="northwind", ticket_id=NORTHWIND.open_ticket_ids[0])
        system.wait_state(fast["id"], "active")
        states = [system.grant(g["id"])["state"] for g in slow]
        assert states == ["provisioning"] * 3
        set_faults(graph_admin(system))
        for g in slow:
            system.wait_state(g["id"], "active", timeout=60)
    finally:
        stop_system(system)
