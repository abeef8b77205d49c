"""No hot loops, no endless waits, no starvation (issue 12 item 10).

Each attack from the review, replayed: a grant whose processing raises an unexpected error
(an undecryptable password), a tenant or PSA answering ``Retry-After: 1e12``, and a customer
with a pile of poison rows at the head of the queue. The worker is driven inline
(``run_until_idle``) under a ManualClock, so "how often was it tried" is a count, not a timing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.core.grant import Grant, GrantState
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.entrypoints.worker import Worker, attach_worker
from jitadmin.ports import AuditQuery

from support.faults import graph_admin, psa_admin, set_faults
from support.system import System, start_system, stop_system

PEDRO, NORTHWIND = CUSTOMERS
CLAMPED = "worker.retry_after_clamped"


@pytest.fixture
def inline(tmp_path: Path, clock: ManualClock, database_url: str) -> Iterator[System]:
    """A system whose worker runs only when the test calls it."""
    running = start_system(tmp_path, clock=clock, database_url=database_url, with_worker=False)
    yield running
    stop_system(running)


@pytest.fixture
def worker(inline: System) -> Worker:
    return attach_worker(inline.app)


def request(system: System, customer: Any = PEDRO, minutes: int = 30) -> dict[str, Any]:
    body = {"customer": customer.slug, "identity_provider": "m365",
            "ticket_id": customer.open_ticket_ids[0], "duration_minutes": minutes,
            "reason": "Backoff drill"}  # fmt: skip
    with system.client() as api:
        response = api.post("/grants", json=body)
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


def stored(system: System, grant_id: str) -> Grant:
    with system.app.ctx.uow() as uow:
        grant = uow.grants.get(grant_id)
    assert grant is not None
    return grant


def events(system: System, grant_id: str, kind: str) -> list[Any]:
    with system.app.ctx.uow() as uow:
        return list(uow.audit.search(AuditQuery(grant_id=grant_id, kind=kind)))


def clamp_alerts(system: System) -> float:
    value = system.app.metrics.registry.get_sample_value(
        "jitadmin_security_alerts_total", {"kind": "retry_after_clamped"}
    )
    return value or 0.0


def graph_calls(system: System) -> int:
    return len(httpx.get(f"{graph_admin(system)}/requests").json())


def test_an_unexpected_error_is_tried_once_per_backoff_step(
    inline: System, worker: Worker, clock: ManualClock
) -> None:
    grant_id = request(inline)["id"]
    with inline.app.ctx.uow() as uow:  # the review's poison: a password nobody can decrypt
        uow.grants.set_password_sealed(grant_id, "v1:not-a-ciphertext")
        uow.commit()
    before = graph_calls(inline)
    max_attempts = inline.app.ctx.tuning.provision_max_attempts
    for attempt in range(1, max_attempts):
        worker.run_until_idle()  # was: re-claimed at once, 1 000 rounds in one call
        grant = stored(inline, grant_id)
        assert grant.state is GrantState.PROVISIONING
        assert grant.attempts == attempt
        assert len(events(inline, grant_id, "grant.attempt_failed")) == attempt
        assert grant.next_attempt_at is not None and grant.next_attempt_at > clock.now()
        assert "unexpected error" in (grant.last_error or "")
        assert worker.run_until_idle() == 0  # nothing is due before the backoff step
        clock.advance(grant.next_attempt_at - clock.now())
    worker.run_until_idle()
    # Out of attempts: failed, and the normal verified cleanup ran (nothing had been created).
    assert len(events(inline, grant_id, "grant.attempt_failed")) == max_attempts
    assert len(events(inline, grant_id, "grant.failed")) == 1
    assert stored(inline, grant_id).state is GrantState.REVOKED
    assert graph_calls(inline) - before < 20  # only the cleanup's reads and deletes


def test_a_revocation_waits_at_most_five_minutes_for_retry_after_1e12(
    inline: System, worker: Worker, clock: ManualClock
) -> None:
    grant_id = request(inline, minutes=5)["id"]
    worker.run_until_idle()
    assert stored(inline, grant_id).state is GrantState.ACTIVE
    set_faults(graph_admin(inline), error_status=429, retry_after="1e12", match="/v1.0/")
    clock.advance(timedelta(minutes=6))
    failed_at = clock.now()
    worker.run_until_idle()
    grant = stored(inline, grant_id)
    assert grant.state is GrantState.REVOKING and grant.attempts == 1
    assert grant.next_attempt_at is not None
    assert grant.next_attempt_at <= failed_at + timedelta(minutes=5)
    alert = events(inline, grant_id, CLAMPED)
    assert len(alert) == 1 and alert[0].data["work"] == "revocation"
    assert alert[0].data["used_s"] == 300 and alert[0].data["asked_s"] > 3600
    assert clamp_alerts(inline) == 1
    # Five minutes on, it is tried again (the client's own tenant-wide hold is also cut to
    # five real minutes, so under this ManualClock the retry is refused in-process, counted).
    clock.advance(grant.next_attempt_at - clock.now())
    retried_at = clock.now()
    worker.run_until_idle()
    again = stored(inline, grant_id)
    assert again.attempts == 2 and again.next_attempt_at is not None
    assert again.next_attempt_at <= retried_at + timedelta(minutes=5)


def test_provisioning_waits_at_most_an_hour_for_retry_after_1e12(
    inline: System, worker: Worker, clock: ManualClock
) -> None:
    grant_id = request(inline)["id"]
    set_faults(graph_admin(inline), error_status=429, retry_after="1e12", match="/v1.0/")
    worker.run_until_idle()
    grant = stored(inline, grant_id)
    assert grant.state is GrantState.PROVISIONING and grant.attempts == 1
    assert grant.next_attempt_at is not None
    assert clock.now() + timedelta(minutes=5) < grant.next_attempt_at
    assert grant.next_attempt_at <= clock.now() + timedelta(hours=1)
    assert [e.data["work"] for e in events(inline, grant_id, CLAMPED)] == ["provisioning"]
    assert clamp_alerts(inline) == 1


@pytest.mark.parametrize(
    "header", ["1e12", "inf", "nan", "-5", "soon", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
def test_a_psa_note_waits_at_most_an_hour_whatever_retry_after_says(
    inline: System, worker: Worker, clock: ManualClock, header: str
) -> None:
    set_faults(psa_admin(inline), error_status=429, retry_after=header, match="POST")
    grant_id = request(inline)["id"]
    worker.run_until_idle()  # provisioned; the grant note meets the broken PSA
    assert stored(inline, grant_id).state is GrantState.ACTIVE
    with inline.app.ctx.uow() as uow:
        (note,) = uow.outbox.for_grant(grant_id)
    assert note.state == "pending" and note.attempts == 1  # tried once, not in a loop
    assert note.next_attempt_at is not None
    assert clock.now() < note.next_attempt_at <= clock.now() + timedelta(hours=1)
    absurd = header in ("1e12", "inf", "Fri, 31 Dec 9999 23:59:59 GMT")
    assert len(events(inline, grant_id, CLAMPED)) == (1 if absurd else 0)
    assert clamp_alerts(inline) == (1 if absurd else 0)


def test_poison_rows_of_one_customer_never_delay_another_customers_expiry(
    inline: System, worker: Worker, clock: ManualClock
) -> None:
    expiring = request(inline, NORTHWIND, minutes=5)["id"]
    worker.run_until_idle()
    assert stored(inline, expiring).state is GrantState.ACTIVE
    clock.advance(timedelta(minutes=6))
    # Forty grants of another customer, due long before, each one poison.
    long_ago = clock.now() - timedelta(days=1)
    poison = [poison_grant(inline, n, long_ago) for n in range(40)]
    worker.run_until_idle(max_rounds=1)  # one pass: one claim, one batch
    assert stored(inline, expiring).state is GrantState.REVOKED
    attempts = [stored(inline, g).attempts for g in poison]
    assert sum(attempts) <= worker.options.per_tenant and max(attempts) <= 1


def poison_grant(system: System, n: int, due: datetime) -> str:
    grant = Grant(
        id=f"00000000-0000-4000-8000-{n:012d}", customer=PEDRO.slug, identity_provider="m365",
        ticket_id=PEDRO.open_ticket_ids[0], requester=f"poison{n}@msp.example",
        reason="poison", duration_minutes=30, created_at=due, expires_at=due,
        state=GrantState.PROVISIONING, next_attempt_at=due,
    )  # fmt: skip
    with system.app.ctx.uow() as uow:
        uow.grants.add(grant, "v1:not-a-ciphertext")
        uow.commit()
    return grant.id
