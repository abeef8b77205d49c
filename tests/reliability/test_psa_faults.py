"""Exactly-once ticket notes under PSA faults, for every PSA: no PSA has an idempotency
key, so the outbox looks for the note's marker before it posts again.

Time is a ManualClock: the tests advance it and poll with a deadline, never sleep. Ground truth
about what a PSA really stored comes from the emulator's state (its API may be down); what a
technician sees comes from the PSA's own vendor API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.entrypoints.worker import attach_worker

from support.psa_harness import KINDS, Harness
from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]
TICKET = PEDRO.open_ticket_ids[0]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def system(tmp_path: Path, clock: ManualClock, kind: str) -> Iterator[System]:
    running = start_system(tmp_path, clock=clock, psa=kind)
    yield running
    stop_system(running)


def request(system: System, minutes: int = 30) -> dict[str, Any]:
    body = {"customer": "pedroaviary", "identity_provider": "m365", "ticket_id": TICKET,
            "duration_minutes": minutes, "reason": "PSA fault drill"}  # fmt: skip
    with system.client() as api:
        response = api.post("/grants", json=body)
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


def outbox(system: System, grant_id: str) -> list[Any]:
    with system.app.ctx.uow() as uow:
        return list(uow.outbox.for_grant(grant_id))


def events_on_ticket(system: System, grant_id: str) -> list[str]:
    """This grant's notes as the technician sees them (vendor API), oldest first."""
    found = []
    for note in system.ticket_notes(TICKET):
        for event in ("granted", "revoke_failed", "revoked"):
            if f"jitadmin:{grant_id}:{event}]" in note:
                found.append(event)
    return found


def stored_events(psa: Harness, grant_id: str) -> list[str]:
    """Ground truth from the emulator's state, readable while its API is down."""
    return [n.split(f"jitadmin:{grant_id}:")[1].split("]")[0]
            for _, n in psa.stored_notes(TICKET) if f"jitadmin:{grant_id}:" in n]  # fmt: skip


def advance_until(system: System, clock: ManualClock, check: Any, what: str) -> Any:
    """Let simulated time pass a minute at a time until ``check()`` is truthy."""

    def step() -> Any:
        result = check()
        if not result:
            clock.advance(timedelta(minutes=1))
        return result

    return wait_for(step, what=what)


def test_a_stored_note_whose_answer_was_lost_is_not_posted_again(
    system: System, clock: ManualClock, kind: str
) -> None:
    psa = Harness(kind, system.world)
    # The grant note: stored, then a 500 instead of the answer.
    psa.drop_after_commit(1, "500")
    grant = request(system)
    system.wait_state(grant["id"], "active")
    wait_for(lambda: any(m.last_error for m in outbox(system, grant["id"])), what="lost answer")
    assert stored_events(psa, grant["id"]) == ["granted"]  # it is there, the worker can't know
    advance_until(system, clock, lambda: outbox(system, grant["id"])[0].state == "sent", "sent")
    # The revoke note: stored, then the connection cut (ConnectWise's emulator: a 500 again).
    psa.drop_after_commit(1, "drop")
    clock.advance(timedelta(minutes=30))
    system.wait_state(grant["id"], "revoked")
    advance_until(
        system, clock, lambda: all(m.state == "sent" for m in outbox(system, grant["id"])), "sent"
    )
    assert len(psa.note_posts()) == 2  # one POST per note: the retries found the markers
    assert events_on_ticket(system, grant["id"]) == ["granted", "revoked"]
    sent = outbox(system, grant["id"])
    assert [m.note_id for m in sent] == [n[0] for n in psa.stored_notes(TICKET)[-2:]]


def test_psa_down_for_ten_minutes_delays_notes_never_revocation(
    tmp_path: Path, clock: ManualClock, kind: str
) -> None:
    system = start_system(tmp_path, clock=clock, psa=kind, with_worker=False)
    try:
        psa = Harness(kind, system.world)
        grant = request(system, minutes=5)  # the ticket check needs the PSA: it is up
        psa.faults(outage=True)
        psa.clear_journal()
        down_since = clock.now()
        worker = attach_worker(system.app)
        clock.on_advance(worker.wake)
        worker.start()
        system.worker = worker

        system.wait_state(grant["id"], "active")
        wait_for(lambda: outbox(system, grant["id"])[0].last_error, what="a failed grant note")
        clock.advance(timedelta(minutes=6))
        revoked = system.wait_state(grant["id"], "revoked")  # no more time needed: not delayed
        assert datetime.fromisoformat(revoked["revoked_at"]) == clock.now()

        while clock.now() - down_since < timedelta(minutes=10):
            clock.advance(timedelta(minutes=1))
            assert stored_events(psa, grant["id"]) == []
        wait_for(lambda: len(outbox(system, grant["id"])) == 2, what="both notes queued")
        assert [m.state for m in outbox(system, grant["id"])] == ["pending", "pending"]
        assert all(e["status"] == 503 for e in psa.journal())

        psa.faults(outage=False)
        advance_until(
            system, clock,
            lambda: all(m.state == "sent" for m in outbox(system, grant["id"])), "delivery",
        )  # fmt: skip
        clock.advance(timedelta(minutes=5))
        assert events_on_ticket(system, grant["id"]) == ["granted", "revoked"]  # in order, once
    finally:
        stop_system(system)


def test_revoke_failed_is_said_on_the_ticket(system: System, clock: ManualClock) -> None:
    graph_admin = system.world.graph_settings(PEDRO)["admin_url"]
    grant = request(system)
    system.wait_state(grant["id"], "active")
    httpx.put(f"{graph_admin}/faults", json={"outage": True}).raise_for_status()
    clock.advance(timedelta(minutes=31))
    advance_until(
        system, clock, lambda: system.grant(grant["id"])["state"] == "revoke_failed", "failed"
    )
    alarm = wait_for(
        lambda: [n for n in system.ticket_notes(TICKET) if f"{grant['id']}:revoke_failed" in n],
        what="the revoke_failed note",
    )
    assert alarm[0].startswith("WARNING: jitadmin could not yet verify")
    httpx.delete(f"{graph_admin}/faults").raise_for_status()
    advance_until(system, clock, lambda: system.grant(grant["id"])["state"] == "revoked", "revoked")
    advance_until(
        system, clock, lambda: all(m.state == "sent" for m in outbox(system, grant["id"])), "sent"
    )
    assert events_on_ticket(system, grant["id"]) == ["granted", "revoke_failed", "revoked"]
