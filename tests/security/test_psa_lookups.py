"""Attack: a user looping PSA-backed endpoints to use up the MSP's PSA quota (issue 12 item 12
g). Each user may cause at most JITADMIN_PSA_LOOKUPS_PER_MINUTE calls to the PSA; beyond that
the ticket picker, grant requests and extends answer 429 with Retry-After, reach no PSA and
write nothing. The picker's lists are cached per customer and user, which the emulator's
request journal shows: repeated lookups do not reach the PSA, and no user's lookup feeds
another's. Both backends; the clock is a ManualClock (no waiting)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.seed import CUSTOMERS

from support.insiders import Insider, add_admin, sign_in, written
from support.psa_harness import Harness
from support.system import System, outbox_drained, start_system, stop_system
from support.waiting import wait_for

PEDRO, NORTHWIND = CUSTOMERS[0], CUSTOMERS[1]
BUDGET = 3


@pytest.fixture
def limited(tmp_path: Path, clock: ManualClock, database_url: str) -> Iterator[System]:
    running = start_system(
        tmp_path, clock=clock, database_url=database_url, psa_lookups_per_minute=BUDGET
    )
    yield running
    stop_system(running)


def tickets(api: httpx.Client, slug: str) -> httpx.Response:
    return api.get(f"/customers/{slug}/tickets")


def grant_body(customer: str, ticket_id: str) -> dict[str, object]:
    return {
        "customer": customer,
        "identity_provider": "m365",
        "ticket_id": ticket_id,
        "duration_minutes": 30,
        "reason": "Fix the Conditional Access lockout",
    }


def ticket_checks(psa: Harness) -> list[dict[str, object]]:
    """Journal entries of single-ticket reads (the ticket checks), not the listings."""
    return [e for e in psa.requests("GET", "/service/tickets/") if "/notes" not in str(e["path"])]


def assert_limited(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "PSA lookups" in response.json()["detail"]
    wait = int(response.headers["Retry-After"])
    assert 1 <= wait <= 60
    return wait


def test_beyond_the_budget_psa_endpoints_answer_429_reach_no_psa_and_write_nothing(
    limited: System, clock: ManualClock
) -> None:
    system, psa = limited, Harness("connectwise", limited.world)
    with system.client() as tech:
        created = tech.post("/grants", json=grant_body(PEDRO.slug, PEDRO.open_ticket_ids[0]))
        assert created.status_code == 202, created.text  # lookup 1: the ticket check
        grant_id = created.json()["id"]
        system.wait_state(grant_id, "active")
        wait_for(lambda: outbox_drained(system, grant_id), what="grant note sent")
        psa.clear_journal()
        assert tickets(tech, PEDRO.slug).status_code == 200  # lookup 2
        assert tickets(tech, PEDRO.slug).status_code == 200  # the cache: no PSA call
        assert len(psa.listing_requests()) == 1
        assert tickets(tech, NORTHWIND.slug).status_code == 200  # lookup 3: budget spent
        # A cached list still answers: the technician's form stays fast.
        assert tickets(tech, PEDRO.slug).status_code == 200
        assert len(psa.listing_requests()) == 2
        before, journal = written(system), len(psa.journal())
        assert_limited(tech.post(f"/grants/{grant_id}/extend", json={"minutes": 15}))
        other = grant_body(NORTHWIND.slug, NORTHWIND.open_ticket_ids[0])
        assert_limited(tech.post("/grants", json=other))
        clock.advance(timedelta(seconds=31))  # the cached list has expired; the budget not
        assert assert_limited(tickets(tech, PEDRO.slug)) == 29
        assert written(system) == before
        assert len(psa.journal()) == journal  # none of the refused calls reached the PSA
        assert ticket_checks(psa) == []
    with system.client("admin") as admin:  # the budget is per user
        assert tickets(admin, PEDRO.slug).status_code == 200
    clock.advance(timedelta(seconds=30))  # a minute after the first lookups
    with system.client() as tech:
        assert tickets(tech, PEDRO.slug).status_code == 200


def test_the_request_form_answers_429_and_writes_nothing(
    limited: System, clock: ManualClock
) -> None:
    system = limited
    who = system.users["technician"]
    session = sign_in(system, Insider(who["username"], who["password"], who["token"]))
    with system.client() as tech:
        for slug in (PEDRO.slug, NORTHWIND.slug):
            assert tickets(tech, slug).status_code == 200
        clock.advance(timedelta(seconds=31))
        assert tickets(tech, PEDRO.slug).status_code == 200  # the third lookup
    before = written(system)
    body = {k: str(v) for k, v in grant_body(PEDRO.slug, PEDRO.open_ticket_ids[0]).items()}
    with session.client(system) as web:
        refused = web.post("/request", data=session.form(**body, password=""))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == 29
    assert "PSA lookups" in refused.text
    assert written(system) == before


def test_cached_ticket_lists_are_per_customer_and_user_never_shared(
    clocked_system: System,
) -> None:
    system, psa = clocked_system, Harness("connectwise", clocked_system.world)
    restricted = add_admin(system, "pedro.admin", customers=[PEDRO.slug])
    psa.clear_journal()
    with system.client() as tech, restricted.api(system) as scoped:
        assert tickets(tech, PEDRO.slug).status_code == 200
        assert len(psa.listing_requests()) == 1
        # Another user (another scope) gets its own lookup, never the technician's list.
        assert tickets(scoped, PEDRO.slug).status_code == 200
        assert len(psa.listing_requests()) == 2
        # Outside its scope a customer does not exist: no lookup, no cached list of it.
        assert tickets(tech, NORTHWIND.slug).status_code == 200
        assert tickets(scoped, NORTHWIND.slug).status_code == 404
        assert len(psa.listing_requests()) == 3
        # Each user's and customer's list is cached: asking again reaches no PSA.
        for api, slug in ((tech, PEDRO.slug), (scoped, PEDRO.slug), (tech, NORTHWIND.slug)):
            assert tickets(api, slug).status_code == 200
        assert len(psa.listing_requests()) == 3
