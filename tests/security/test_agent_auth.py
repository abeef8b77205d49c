"""On-prem agents, the server's side: one-time enrollment codes, the agent registry and every
signed agent request, over HTTPS on loopback (a certificate the test makes).

Refused: a reused or expired code, a revoked agent, a request signed by another agent's key,
altered, stale or replayed, and an agent of customer A reaching customer B's jobs.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.agent.client import ServerClient
from jitadmin.agent.signing import new_private_key, public_key, signature_headers
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.services.agents import AGENT_KIND

from support.agents import AgentServer, InProcessAgent, ca_context, start_agent_server
from support.system import System, start_system, stop_system
from support.waiting import wait_for

A, B = CUSTOMERS[0], CUSTOMERS[1]
SID = "S-1-5-21-1111111111-2222222222-3333333333"
LEASE = "/api/v1/agent/jobs/lease"


@dataclass
class World:
    system: System
    clock: ManualClock
    server: AgentServer


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    system = start_system(tmp_path, clock=clock, database_url=database_url)
    server = start_agent_server(system, tmp_path)
    try:
        yield World(system, clock, server)
    finally:
        server.stop()
        stop_system(system)


def _enroll_body(code: str, private: str) -> dict[str, str]:
    return {"code": code, "name": "dc-agent", "public_key": public_key(private),
            "version": "t", "tenant_id": SID, "domain": "pedroaviary.local"}  # fmt: skip


def _grant(world: World, customer: str = A.slug) -> str:
    with world.system.client() as tech:
        made = tech.post(
            "/grants",
            json={"customer": customer, "identity_provider": AGENT_KIND,
                  "ticket_id": next(c for c in CUSTOMERS if c.slug == customer).open_ticket_ids[0],
                  "duration_minutes": 30, "reason": "Patch the DC"},
        )  # fmt: skip
    assert made.status_code == 202, made.text
    grant_id: str = made.json()["id"]
    return grant_id


def _wait_job(world: World, grant_id: str) -> None:
    def queued() -> bool:
        with world.system.app.ctx.uow() as uow:
            return bool(uow.agents.jobs_for(grant_id))

    wait_for(queued, what=f"a job for grant {grant_id}")


def test_enrollment_registers_the_agent_and_offers_on_prem_ad(world: World) -> None:
    with world.system.client("admin") as admin:
        made = admin.post(f"/customers/{A.slug}/agents/enrollments")
    assert made.status_code == 201, made.text
    code = made.json()["code"]
    assert datetime.fromisoformat(made.json()["expires_at"]) == world.clock.now() + timedelta(
        minutes=15
    )
    private = new_private_key()
    client = ServerClient(world.server.url, private, None, world.server.tls.ca_pem)
    registered = client.post("/agent/enroll", _enroll_body(code, private))
    client.close()
    assert registered["customer"] == A.slug
    [listed] = world.server.agents(A.slug)
    assert listed["id"] == registered["agent_id"]
    assert listed["state"] == "online" and listed["name"] == "dc-agent"
    assert listed["version"] == "t"
    with world.system.client() as tech:
        customers = {c["slug"]: c for c in tech.get("/customers").json()["items"]}
    assert AGENT_KIND in customers[A.slug]["identity_providers"]
    assert AGENT_KIND not in customers[B.slug]["identity_providers"]
    # No LDAP URL, bind user or password is stored on the server for this connection.
    with world.system.app.ctx.uow() as uow:
        record = uow.connections.get(A.slug, AGENT_KIND)
        assert record is not None and record.settings == {}
        assert world.system.app.ctx.open_secrets(record) == {}
        events = [e.kind for e in uow.audit.entries(limit=500)]
        trail = json.dumps([e.data for e in uow.audit.entries(limit=500)])
    assert "agent.enrollment_created" in events and "agent.enrolled" in events
    assert code not in trail and private not in trail
    # Offline once it has not been heard from for a while.
    world.clock.advance(timedelta(minutes=5))
    assert world.server.agents(A.slug)[0]["state"] == "offline"


def test_a_code_works_once_and_only_for_15_minutes(world: World) -> None:
    code = world.server.enrollment_code(A.slug)
    first = InProcessAgent(world.server, "", new_private_key())
    answer = first.raw("/api/v1/agent/enroll", _enroll_body(code, first.private_key))
    assert answer.status_code == 201, answer.text
    again = InProcessAgent(world.server, "", new_private_key())
    reused = again.raw("/api/v1/agent/enroll", _enroll_body(code, again.private_key))
    assert reused.status_code == 401, reused.text
    late_code = world.server.enrollment_code(A.slug)
    world.clock.advance(timedelta(minutes=15, seconds=1))
    late = InProcessAgent(world.server, "", new_private_key())
    expired = late.raw("/api/v1/agent/enroll", _enroll_body(late_code, late.private_key))
    assert expired.status_code == 401, expired.text
    assert len(world.server.agents(A.slug)) == 1
    # The enrollment must be signed by the key it registers.
    other = InProcessAgent(world.server, "", new_private_key())
    fresh = world.server.enrollment_code(A.slug)
    unproven = other.raw("/api/v1/agent/enroll", _enroll_body(fresh, new_private_key()))
    assert unproven.status_code == 401, unproven.text


def test_signed_requests_refuse_other_keys_alterations_staleness_and_replays(
    world: World,
) -> None:
    agent = world.server.enroll(A.slug, tenant_id=SID)
    assert agent.raw(LEASE).status_code == 200
    # Another agent's key, or a key nobody enrolled, for this agent's id.
    other = world.server.enroll(A.slug, tenant_id=SID)
    assert agent.raw(LEASE, key=other.private_key).status_code == 401
    assert agent.raw(LEASE, key=new_private_key()).status_code == 401
    # A body other than the one signed.
    altered = agent.raw(LEASE, {"a": 1}, sent_body=b'{"a": 2}')
    assert altered.status_code == 401
    # A timestamp more than five minutes off the server's clock.
    stale = int((world.clock.now() - timedelta(minutes=6)).timestamp())
    assert agent.raw(LEASE, timestamp=stale).status_code == 401
    # A nonce other than the one signed.
    renonced = agent.raw(LEASE, headers={"X-Jitadmin-Nonce": "r" * 22})
    assert renonced.status_code == 401
    # The very same request twice (bytes and headers): the second is a replay.
    body = b"{}"
    headers = signature_headers(
        agent.private_key, agent.agent_id, "POST", LEASE, body,
        timestamp=int(world.clock.now().timestamp()),
    )  # fmt: skip
    with httpx.Client(verify=ca_context(world.server.tls.ca_pem), timeout=30) as http:
        once = http.post(f"{world.server.url}{LEASE}", content=body, headers=headers)
        twice = http.post(f"{world.server.url}{LEASE}", content=body, headers=headers)
    assert once.status_code == 200, once.text
    assert twice.status_code == 401 and "replayed" in twice.json()["detail"]
    # No signature at all, or an unknown agent id.
    with httpx.Client(verify=ca_context(world.server.tls.ca_pem), timeout=30) as http:
        assert http.post(f"{world.server.url}{LEASE}").status_code == 401
    ghost = InProcessAgent(world.server, "00000000-0000-4000-8000-000000000000", agent.private_key)
    assert ghost.raw(LEASE).status_code == 401


def test_a_revoked_agent_is_refused_at_once_and_it_is_audited(world: World) -> None:
    agent = world.server.enroll(A.slug, tenant_id=SID)
    assert agent.raw(LEASE).status_code == 200
    with world.system.client("admin") as admin:
        revoked = admin.delete(f"/agents/{agent.agent_id}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    assert agent.raw(LEASE).status_code == 401
    assert world.server.agents(A.slug)[0]["state"] == "revoked"
    with world.system.app.ctx.uow() as uow:
        kinds = [e.kind for e in uow.audit.entries(limit=500)]
    assert "agent.revoked" in kinds
    # Technicians may do none of it.
    with world.system.client() as tech:
        assert tech.post(f"/customers/{A.slug}/agents/enrollments").status_code == 403
        assert tech.get(f"/customers/{A.slug}/agents").status_code == 403
        assert tech.delete(f"/agents/{agent.agent_id}").status_code == 403


def test_an_agent_of_one_customer_never_sees_or_answers_anothers_jobs(world: World) -> None:
    agent_a = world.server.enroll(A.slug, tenant_id=SID)
    agent_b = world.server.enroll(B.slug, tenant_id="S-1-5-21-9-9-9")
    grant_id = _grant(world, A.slug)
    _wait_job(world, grant_id)
    with world.system.app.ctx.uow() as uow:
        [job] = uow.agents.jobs_for(grant_id)
    # B's agent: nothing to lease, and A's job is unknown to it.
    leased_b = agent_b.raw(LEASE)
    assert leased_b.status_code == 200 and leased_b.json()["job"] is None
    for path, body in (
        (f"/api/v1/agent/jobs/{job.id}/steps", {"step": "password_set", "data": {}}),
        (f"/api/v1/agent/jobs/{job.id}/result", {"ok": True, "username": "x", "account": {}}),
    ):
        assert agent_b.raw(path, body).status_code == 404
    # A's agent gets it, with the one-time password, which rests sealed in the job row.
    leased = agent_a.raw(LEASE).json()["job"]
    assert leased["id"] == job.id and leased["kind"] == "grant"
    with world.system.app.ctx.uow() as uow:
        stored = uow.agents.job(job.id)
    assert (
        stored is not None and stored.sealed and leased["secret"] not in json.dumps(stored.payload)
    )
    assert leased["secret"] not in (stored.sealed or "")


def test_the_job_protocol_moves_the_grant_and_refuses_bad_reports(world: World) -> None:
    agent = world.server.enroll(A.slug, tenant_id=SID)
    grant_id = _grant(world, A.slug)
    _wait_job(world, grant_id)
    job = agent.raw(LEASE).json()["job"]
    steps = f"/api/v1/agent/jobs/{job['id']}/steps"
    result = f"/api/v1/agent/jobs/{job['id']}/result"
    # Only the adapter's step names, only flat bounded data.
    assert agent.raw(steps, {"step": "drop_table", "data": {}}).status_code == 422
    assert agent.raw(steps, {"step": "password_set", "data": {"x": {"y": 1}}}).status_code == 422
    assert agent.raw(steps, {"step": "password_set", "data": {}}).json() == {"accepted": True}
    answer = {
        "ok": True,
        "username": "tech-pedroaviary",
        "account": {"object_guid": "0b6c1e0e-0000-4000-8000-000000000001", "sam": "t"},
    }
    assert agent.raw(result, answer).json() == {"accepted": True}
    assert agent.raw(result, answer).json() == {"accepted": False}  # a repeat changes nothing
    world.system.wait_state(grant_id, "active")
    # Each extension queues an extend job with the newest end (the previous one retired).
    with world.system.client() as tech:
        for minutes in (5, 10):
            extended = tech.post(f"/grants/{grant_id}/extend", json={"minutes": minutes})
            assert extended.status_code == 200, extended.text
    with world.system.app.ctx.uow() as uow:
        extends = [j for j in uow.agents.jobs_for(grant_id) if j.kind == "extend"]
        grant = uow.grants.get(grant_id)
    assert [j.state for j in extends] == ["retired", "pending"]
    assert grant is not None and extends[-1].payload["expires_at"] == grant.expires_at.isoformat()


def test_nothing_an_agent_reports_makes_the_server_connect_anywhere(world: World) -> None:
    """Addresses in an agent's reports are text to the server: it dials none of them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    dialled: list[object] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                dialled.append(listener.accept())
            except TimeoutError:
                continue

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    bait = f"ldaps://127.0.0.1:{port}"
    agent = world.server.enroll(A.slug, tenant_id=SID, domain=f"127.0.0.1:{port}")
    grant_id = _grant(world, A.slug)
    _wait_job(world, grant_id)
    job = agent.raw(LEASE).json()["job"]
    base = f"/api/v1/agent/jobs/{job['id']}"
    agent.raw(f"{base}/steps", {"step": "verified_granted", "data": {"other_dcs": bait}})
    agent.raw(f"{base}/result", {"ok": True, "username": "t", "account": {"url": bait, "dn": bait}})
    world.system.wait_state(grant_id, "active")
    with world.system.client() as tech:
        assert tech.post(f"/grants/{grant_id}/revoke").status_code == 202
    revoke = agent.raw(f"{LEASE}?wait=20").json()["job"]  # waits for the worker's job
    assert revoke["kind"] == "revoke"
    agent.raw(f"/api/v1/agent/jobs/{revoke['id']}/result", {"ok": True})
    world.system.wait_state(grant_id, "revoked")
    with world.system.client("admin") as admin:
        admin.post(f"/customers/{A.slug}/connections/ad_agent/test")
    stop.set()
    watcher.join()
    listener.close()
    assert dialled == []


# -- one grant's jobs run in order, and only by the agent that holds them ---------------------


def _jobs(world: World, grant_id: str, kind: str | None = None) -> list[Any]:
    with world.system.app.ctx.uow() as uow:
        return [j for j in uow.agents.jobs_for(grant_id) if kind is None or j.kind == kind]


def _revoke_now(world: World, grant_id: str) -> None:
    with world.system.client("admin") as admin:
        ended = admin.post(f"/grants/{grant_id}/revoke")
    assert ended.status_code in (200, 202), ended.text
    wait_for(lambda: _jobs(world, grant_id, "revoke"), what="the revoke job")


def test_a_revoke_waits_for_the_grant_job_another_agent_still_holds(world: World) -> None:
    """Two agents: while one still works on the grant job (it may be enabling the account), the
    other is not handed the revoke; it gets it once the grant job is finished."""
    first = world.server.enroll(A.slug, tenant_id=SID)
    second = world.server.enroll(A.slug, tenant_id=SID)
    grant_id = _grant(world, A.slug)
    _wait_job(world, grant_id)
    held = first.raw(LEASE).json()["job"]
    assert held["kind"] == "grant"
    _revoke_now(world, grant_id)
    assert second.raw(LEASE).json()["job"] is None  # the grant job is still being worked on
    done = {"ok": True, "username": "jdoe-pedroaviary",
            "account": {"object_guid": "0b6c1e0e-0000-4000-8000-000000000002"}}  # fmt: skip
    assert first.raw(f"/api/v1/agent/jobs/{held['id']}/result", done).json()["accepted"]
    revoke = second.raw(LEASE).json()["job"]
    assert revoke is not None and revoke["kind"] == "revoke"


def test_a_lapsed_lease_taken_over_stops_the_first_agent(world: World) -> None:
    first = world.server.enroll(A.slug, tenant_id=SID)
    second = world.server.enroll(A.slug, tenant_id=SID)
    grant_id = _grant(world, A.slug)
    _wait_job(world, grant_id)
    job = first.raw(LEASE).json()["job"]
    lease_s = world.system.app.ctx.agent_job_lease_s
    world.clock.advance(timedelta(seconds=lease_s + 1))  # the first agent went quiet
    assert second.raw(LEASE).json()["job"]["id"] == job["id"]
    steps, result = (f"/api/v1/agent/jobs/{job['id']}/{p}" for p in ("steps", "result"))
    # The first agent's late reports are refused: it stops giving access.
    late = {"step": "enabled", "data": {}}
    assert first.raw(steps, late).json() == {"accepted": False}
    answer = {"ok": True, "username": "x", "account": {}}
    assert first.raw(result, answer).json() == {"accepted": False}
    assert second.raw(steps, late).json() == {"accepted": True}


def test_a_grant_job_nobody_took_is_dropped_by_the_revoke_which_names_the_account(
    world: World,
) -> None:
    agent = world.server.enroll(A.slug, tenant_id=SID)
    grant_id = _grant(world, A.slug)
    _wait_job(world, grant_id)
    _revoke_now(world, grant_id)
    [granting] = _jobs(world, grant_id, "grant")
    assert granting.state == "retired" and granting.sealed is None  # the password is gone too
    revoke = agent.raw(LEASE).json()["job"]
    assert revoke["kind"] == "revoke"
    # The customer's own prefix and the planned name: the agent looks for the right account
    # even though the grant never became active.
    grant = world.system.grant(grant_id)
    assert revoke["payload"]["domain_prefix"] == A.slug
    assert grant["username"] and revoke["payload"]["username"] == grant["username"]


def test_a_revoked_agent_hands_its_job_back_and_gets_no_more(world: World) -> None:
    first = world.server.enroll(A.slug, tenant_id=SID)
    second = world.server.enroll(A.slug, tenant_id=SID)
    grant_id = _grant(world, A.slug)
    _wait_job(world, grant_id)
    job = first.raw(LEASE).json()["job"]
    with world.system.client("admin") as admin:
        assert admin.delete(f"/agents/{first.agent_id}").status_code == 200
    assert second.raw(LEASE).json()["job"]["id"] == job["id"]  # at once, not after the lease
    assert first.raw(f"/api/v1/agent/jobs/{job['id']}/steps",
                     {"step": "enabled", "data": {}}).status_code == 401  # fmt: skip


def test_a_fail_safe_report_before_the_grant_ends_changes_nothing(world: World) -> None:
    agent = world.server.enroll(A.slug, tenant_id=SID)
    grant_id = _grant(world, A.slug)
    _wait_job(world, grant_id)
    job = agent.raw(LEASE).json()["job"]
    done = {"ok": True, "username": "jdoe-pedroaviary",
            "account": {"object_guid": "0b6c1e0e-0000-4000-8000-000000000003"}}  # fmt: skip
    assert agent.raw(f"/api/v1/agent/jobs/{job['id']}/result", done).json()["accepted"]
    world.system.wait_state(grant_id, "active")
    early = {"grant_id": grant_id, "steps": ["disabled"], "revoked_at": "2026-01-01T00:00:00Z"}
    assert agent.raw("/api/v1/agent/failsafe", early).json() == {"accepted": False}
    assert world.system.grant(grant_id)["state"] == "active"
    assert _jobs(world, grant_id, "revoke") == []


def test_what_an_agent_says_of_itself_is_checked_and_a_bad_report_changes_nothing(
    world: World,
) -> None:
    agent = world.server.enroll(A.slug, tenant_id=SID)
    for body, field in (
        ({"version": 5, "tenant_id": SID, "domain": "pedroaviary.local"}, "version"),
        ({"version": "1", "tenant_id": "'); DROP", "domain": "pedroaviary.local"}, "tenant_id"),
        ({"version": "1", "tenant_id": SID, "domain": ["a"]}, "domain"),
    ):
        answer = agent.raw("/api/v1/agent/hello", body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == field
    with world.system.app.ctx.uow() as uow:
        stored = uow.agents.get(agent.agent_id)
    assert stored is not None and stored.tenant_id == SID and stored.version == "test"


def test_with_every_agent_revoked_on_prem_ad_via_agent_is_no_longer_offered(world: World) -> None:
    agent = world.server.enroll(A.slug, tenant_id=SID)

    def offered() -> list[str]:
        with world.system.client() as tech:
            listed = tech.get("/customers").json()["items"]
        kinds: list[str] = next(c for c in listed if c["slug"] == A.slug)["identity_providers"]
        return kinds

    assert AGENT_KIND in offered()
    with world.system.client("admin") as admin:
        assert admin.delete(f"/agents/{agent.agent_id}").status_code == 200
    assert AGENT_KIND not in offered()
    with world.system.client() as tech:
        refused = tech.post(
            "/grants",
            json={"customer": A.slug, "identity_provider": AGENT_KIND,
                  "ticket_id": A.open_ticket_ids[0], "duration_minutes": 30, "reason": "Patch"},
        )  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "identity_provider"
    # A new agent brings it back.
    world.server.enroll(A.slug, tenant_id=SID)
    assert AGENT_KIND in offered()
