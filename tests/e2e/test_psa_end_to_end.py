"""The whole product with each PSA: ticket picker → grant → note → expiry → revoke → note,
through the API and the worker, with the notes read back through each PSA's own vendor API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.runner import free_port
from jitadmin.emulators.seed import CUSTOMERS

from support.psa_clients import vendor_notes
from support.psa_harness import KINDS, SECRET, Harness
from support.system import System, demo_ready, start_system, stop_system
from support.waiting import wait_for

PEDRO, NORTHWIND = CUSTOMERS
GRANTED = "is now enabled and has been added to the Global Admin role."


@pytest.fixture(params=KINDS)
def running(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[System]:
    system = start_system(tmp_path, clock=clock, psa=request.param)
    yield system
    stop_system(system)


def harness(system: System) -> Harness:
    return Harness(system.world.psa_kind, system.world)


def grant_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": "pedroaviary", "identity_provider": "m365",
        "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
        "reason": "Fix the Conditional Access lockout",
    }  # fmt: skip
    return body | changes


def notes_of(system: System, ticket: str, grant_id: str) -> list[str]:
    return [n for n in system.ticket_notes(ticket) if f"jitadmin:{grant_id}:" in n]


def test_grant_and_revocation_leave_one_note_each(running: System, clock: ManualClock) -> None:
    system, kind = running, running.world.psa_kind
    with system.client() as api:
        picker = api.get("/customers/pedroaviary/tickets").json()["items"]
    assert [t["id"] for t in picker] == sorted(PEDRO.open_ticket_ids, key=int, reverse=True)
    assert all(t["number"] and t["summary"] and t["status"] for t in picker)
    if kind == "autotask":
        assert all(t["number"].startswith("T2026") for t in picker)

    ticket = PEDRO.open_ticket_ids[0]
    with system.client() as api:
        created = api.post("/grants", json=grant_body(ticket_id=ticket))
    assert created.status_code == 202, created.text
    grant = created.json()
    system.wait_state(grant["id"], "active")
    granted = wait_for(lambda: notes_of(system, ticket, grant["id"]), what=f"{kind} grant note")
    assert len(granted) == 1
    assert granted[0].startswith(f"The account {grant['username']} {GRANTED}")
    assert f"[jitadmin:{grant['id']}:granted]" in granted[0]
    assert grant["password"] not in "".join(system.ticket_notes(ticket))

    clock.advance(timedelta(minutes=31))
    system.wait_state(grant["id"], "revoked")
    wait_for(lambda: outbox_drained(system, grant["id"]), what=f"{kind} revoke note")
    clock.advance(timedelta(minutes=5))  # give any stray retry its chance to double a note
    both = notes_of(system, ticket, grant["id"])
    events = [e for n in both for e in ("granted", "revoked") if f":{e}]" in n]
    assert events == ["granted", "revoked"]  # exactly one of each, in that order
    assert "Global Admin has been removed" in both[1]


def outbox_drained(system: System, grant_id: str) -> bool:
    with system.app.ctx.uow() as uow:
        messages = uow.outbox.for_grant(grant_id)
    return bool(messages) and all(m.state == "sent" for m in messages)


def test_submit_asks_the_psa_itself_never_the_picker_cache(
    running: System, clock: ManualClock
) -> None:
    system, psa = running, harness(running)
    fresh = str(psa.add_ticket(PEDRO.psa_company_id, "Reset the MFA of the CFO"))
    with system.client() as api:
        listed = [t["id"] for t in api.get("/customers/pedroaviary/tickets").json()["items"]]
        assert listed[0] == fresh  # newest first
        pages = len(psa.listing_requests())
        psa.close_ticket(int(fresh))
        # Within its 30 seconds the picker still offers the ticket, from its cache...
        again = [t["id"] for t in api.get("/customers/pedroaviary/tickets").json()["items"]]
        assert again == listed
        assert len(psa.listing_requests()) == pages
        # ...but the submit asks the PSA, which says closed.
        refused = api.post("/grants", json=grant_body(ticket_id=fresh))
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            {"field": "ticket_id", "rule": f"ticket {fresh} is closed"}
        ]
        assert len(psa.requests("GET", f"tickets/{fresh}")) == 1
        pages = len(psa.listing_requests())
        clock.advance(timedelta(seconds=31))  # the picker keeps a list 30 s
        later = [t["id"] for t in api.get("/customers/pedroaviary/tickets").json()["items"]]
        assert fresh not in later
        assert len(psa.listing_requests()) == pages + 1

        foreign = api.post("/grants", json=grant_body(ticket_id=NORTHWIND.open_ticket_ids[0]))
        assert foreign.status_code == 422
        assert "belongs to another customer" in foreign.json()["detail"]
        unknown = api.post("/grants", json=grant_body(ticket_id="1"))
        assert (unknown.status_code, unknown.json()["errors"][0]["field"]) == (422, "ticket_id")
    with system.app.ctx.uow() as uow:
        assert uow.grants.find() == []  # bad input changes nothing


def test_put_psa_and_test_the_connection(running: System) -> None:
    system, kind = running, running.world.psa_kind
    settings = {k: v for k, v in system.world.psa_settings().items() if k != "admin_url"}
    secret = settings[SECRET[kind]]
    with system.client("admin") as admin:
        saved = admin.put("/psa", json=settings)
        assert saved.status_code == 200, saved.text
        assert SECRET[kind] not in saved.json()
        tested = admin.post("/psa/test")
        assert tested.status_code == 200, tested.text
        assert tested.json()["ok"] is True and tested.json()["kind"] == kind
        assert any("open tickets visible" in f for f in tested.json()["findings"])

        required = {"connectwise": "client_id", "autotask": "integration_code",
                    "halopsa": "auth_url"}[kind]  # fmt: skip
        missing = admin.put("/psa", json={k: v for k, v in settings.items() if k != required})
        assert missing.status_code == 422
        assert missing.json()["errors"] == [{"field": required, "rule": "is required"}]
        wrong = admin.put("/psa", json=settings | {SECRET[kind]: "not-the-secret"})
        assert wrong.status_code == 200
        failed = admin.post("/psa/test")
        assert failed.status_code == 503
        assert "connection test failed" in failed.json()["detail"]
        assert secret not in failed.text and "not-the-secret" not in failed.text
    with system.client() as tech:
        assert tech.post("/psa/test").status_code == 403


# What demo.json (a public interface) carries for each PSA: exactly the PUT /psa body + admin_url.
DEMO_PSA_KEYS = {
    "connectwise": {"company_id", "public_key", "private_key", "client_id"},
    "autotask": {"username", "secret", "integration_code"},
    "halopsa": {"auth_url", "client_id", "client_secret", "tenant"},
}


@pytest.mark.parametrize("kind", ["autotask", "halopsa"])
def test_demo_seeds_the_chosen_psa(tmp_path: Path, kind: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JITADMIN_")}
    command = [sys.executable, "-m", "jitadmin", "demo", "--psa", kind, "--port", str(port),
               "--data-dir", str(tmp_path)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        demo = wait_for(lambda: demo_ready(url, tmp_path / "demo.json"), timeout=60, what="demo")
        psa = demo["emulators"]["psa"]
        assert set(psa) == {"kind", "base_url", "admin_url"} | DEMO_PSA_KEYS[kind]
        assert psa["kind"] == kind
        token = demo["users"]["technician"]["token"]
        with httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as api:
            items = api.get("/customers/pedroaviary/tickets").json()["items"]
        assert [t["id"] for t in items] == sorted(PEDRO.open_ticket_ids, key=int, reverse=True)
        # The credentials in demo.json open the vendor API itself, as a script would use them.
        assert vendor_notes(psa, PEDRO.closed_ticket_ids[0]) == []
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert f"PSA: {kind}" in output
