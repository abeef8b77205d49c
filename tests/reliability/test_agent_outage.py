"""The agent path through outages: no agent online when a revocation is due (the grant stays
`revoking`, the alert fires once: audit, metric, ticket note; it converges once the agent is
back), and the server unreachable past a grant's end (the agent's fail-safe revokes on the DC
itself, and the server records it when it is back)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jitadmin.adapters.clock import ManualClock

from support.ad import SambaDc
from support.agent_world import PEDRO, AgentWorld, running_agent_world, stop_agent
from support.receiver import Receiver, receiver, subscribe
from support.system import outbox_drained
from support.waiting import wait_for

HOOK_SECRET = "the-security-lead-hook-secret"


def _gauge(metrics: str, name: str) -> float:
    found = re.search(rf'^{name}\{{customer="{PEDRO.slug}"[^}}]*\}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def clocked(tmp_path: Path, samba_dc: SambaDc) -> Iterator[tuple[AgentWorld, ManualClock]]:
    # The agent signs with the real time; the server's clock may move a little (< 5 min skew).
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with running_agent_world(tmp_path, samba_dc, clock=clock) as world:
        yield world, clock


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def test_no_agent_online_at_revocation_alerts_once_and_converges_when_it_returns(
    clocked: tuple[AgentWorld, ManualClock], hook: Receiver
) -> None:
    world, clock = clocked
    subscribe(world.system, hook, ["agent.offline"], HOOK_SECRET)
    config = world.enroll("agent")
    agent = world.run(config)
    created = world.request()
    world.system.wait_state(created["id"], "active", timeout=60)
    agent.kill()
    agent.wait()
    # Whatever the agent sent before it died has been answered (its long poll included): no
    # request of it can count as "seen" after the clock moves.
    wait_for(world.server.idle, what="the dead agent's requests to end")
    clock.advance(timedelta(minutes=2))  # not heard from for longer than the online window
    assert world.server.agents()[0]["state"] == "offline"
    assert world.tech.post(f"/grants/{created['id']}/revoke").status_code == 202
    alerted = wait_for(lambda: world.notes(created["id"], "agent_offline"), what="the alert")
    assert "no on-prem agent of this customer is online" in alerted[0]
    assert world.system.grant(created["id"])["state"] == "revoking"
    metrics = world.system.metrics()
    assert _gauge(metrics, "jitadmin_agent_offline_grants") == 1
    assert _gauge(metrics, "jitadmin_agent_job_backlog") == 1
    assert world.is_domain_admin(created["username"])  # nobody reached the DC meanwhile
    with world.system.app.ctx.uow() as uow:
        kinds = [e.kind for e in uow.audit.entries(grant_id=created["id"])]
    assert kinds.count("agent.offline_alert") == 1
    assert world.system.worker is not None
    assert world.system.worker.watch_agents() == 0  # once per grant, however often it looks
    # Whoever asked for agent.offline is told, once, signed, with the grant's link.
    told = wait_for(lambda: list(hook.accepted_once().values()), what="the agent.offline event")
    assert [r.headers["x-jitadmin-event"] for r in told] == ["agent.offline"]
    assert told[0].signed_by(HOOK_SECRET) and told[0].json()["grant"]["id"] == created["id"]

    world.run(config)  # back
    world.system.wait_state(created["id"], "revoked", timeout=60)
    assert not world.account(created["username"]).enabled
    wait_for(lambda: outbox_drained(world.system, created["id"]), what="the notes sent")
    assert len(world.notes(created["id"], "agent_offline")) == 1
    assert len(world.notes(created["id"], "revoked")) == 1
    assert _gauge(world.system.metrics(), "jitadmin_agent_offline_grants") == 0


@pytest.mark.slow
def test_the_fail_safe_revokes_on_the_dc_when_the_server_is_unreachable_past_the_end(
    tmp_path: Path, samba_dc: SambaDc
) -> None:
    with running_agent_world(tmp_path, samba_dc) as world:
        config = world.enroll("agent", grace_s=1.0, poll_s=1.0)
        agent = world.run(config)
        created = world.request(duration_minutes=1)
        world.system.wait_state(created["id"], "active", timeout=60)
        sam = created["username"]
        # The agent has heard of the grant's end; then the server goes away.
        state = tmp_path / "agent.state" / "failsafe.json"
        wait_for(lambda: state.exists() and created["id"] in state.read_text(), what="its end")
        world.server.stop()
        # A real minute: the grant's end plus the one-second grace, then the agent acts alone.
        wait_for(lambda: not world.account(sam).enabled, timeout=150, what="the fail-safe")
        assert not world.is_domain_admin(sam)
        assert world.system.grant(created["id"])["state"] in ("active", "revoking")
        world.server.restart()
        world.system.wait_state(created["id"], "revoked", timeout=90)
        detail = world.system.grant(created["id"])
        assert "account.failsafe_revoked" in [e["kind"] for e in detail["events"]]
        wait_for(lambda: outbox_drained(world.system, created["id"]), what="the notes sent")
        assert len(world.notes(created["id"], "revoked")) == 1
        assert not list((tmp_path / "agent.state" / "spool").glob("*.json"))
        stop_agent(agent)
