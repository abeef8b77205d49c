"""Attack: extend as a way to standing access (issue 12 item 4). The whole life of a grant,
from activation, stays within the customer's maximum, and every extend re-checks the ticket in
the PSA; a refused extend writes nothing (grant, audit, outbox, PSA notes). Both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from jitadmin.adapters.clock import ManualClock
from jitadmin.core.policy import DEFAULT_MAX_DURATION_MINUTES
from jitadmin.emulators.seed import CUSTOMERS

from support.system import System, outbox_drained
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]
MAXIMUM = DEFAULT_MAX_DURATION_MINUTES


def start_grant(system: System) -> dict[str, Any]:
    body = {
        "customer": "pedroaviary", "identity_provider": "m365",
        "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
        "reason": "Fix the Conditional Access lockout",
    }  # fmt: skip
    with system.client() as api:
        created = api.post("/grants", json=body)
    assert created.status_code == 202, created.text
    grant = system.wait_state(created.json()["id"], "active")
    wait_for(lambda: outbox_drained(system, grant["id"]), what="grant note sent")
    return grant


def written(system: System, grant_id: str, ticket_id: str) -> tuple[Any, ...]:
    """Everything an extend could write: the grant, its audit trail, outbox and PSA notes."""
    grant = system.grant(grant_id)
    with system.client("admin") as api:
        audit = api.get("/audit", params={"grant_id": grant_id}).json()["items"]
    with system.app.ctx.uow() as uow:
        outbox = [(m.marker, m.state) for m in uow.outbox.for_grant(grant_id)]
    notes = system.ticket_notes(ticket_id)
    return grant["expires_at"], grant["duration_minutes"], len(audit), outbox, notes


def refused_field(system: System, grant_id: str, minutes: int) -> str:
    with system.client() as api:
        response = api.post(f"/grants/{grant_id}/extend", json={"minutes": minutes})
    assert response.status_code == 422, response.text
    return str(response.json()["errors"][0]["field"])


def test_repeated_extends_never_pass_activation_plus_maximum(
    clocked_system: System, clock: ManualClock
) -> None:
    system = clocked_system
    grant = start_grant(system)
    with system.client() as api:
        first = api.post(f"/grants/{grant['id']}/extend", json={"minutes": MAXIMUM - 60})
    assert first.status_code == 200, first.text
    wait_for(lambda: outbox_drained(system, grant["id"]), what="extend note sent")
    # Hours later the old rule (a cap from "now") would allow another long extend.
    clock.advance(timedelta(minutes=400))
    before = written(system, grant["id"], grant["ticket_id"])
    assert refused_field(system, grant["id"], 60) == "minutes"
    assert refused_field(system, grant["id"], MAXIMUM) == "minutes"
    assert written(system, grant["id"], grant["ticket_id"]) == before
    # Up to the cap, exactly, is still fine.
    with system.client() as api:
        last = api.post(f"/grants/{grant['id']}/extend", json={"minutes": 30})
    assert last.status_code == 200, last.text
    total = system.grant(grant["id"])["duration_minutes"]
    assert total == MAXIMUM
    assert refused_field(system, grant["id"], 1) == "minutes"


def test_extend_after_the_ticket_was_closed_in_the_psa_is_refused(system: System) -> None:
    grant = start_grant(system)
    with system.cw() as cw:
        closed = cw.patch(
            f"service/tickets/{grant['ticket_id']}",
            json=[{"op": "replace", "path": "closedFlag", "value": True}],
        )
    assert closed.status_code == 200, closed.text
    before = written(system, grant["id"], grant["ticket_id"])
    assert refused_field(system, grant["id"], 15) == "ticket_id"
    assert written(system, grant["id"], grant["ticket_id"]) == before
    assert system.grant(grant["id"])["state"] == "active"
