"""The agent path's crash matrix: the real agent is SIGKILLed right after the server accepted
each recorded step of a grant and of a revocation; a restarted agent (the same enrollment)
takes the job over once the dead one's lease lapses and converges, with exactly one note of
each kind. And two agents of one customer: one dies mid-job, the other finishes it.

Jobs are leased for 2 s here (JITADMIN_AGENT_JOB_LEASE_SECONDS), so a dead agent's job comes
back quickly; everything else is as in production, against the shared Samba DC.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ad import SambaDc
from support.agent_world import AgentWorld, running_agent_world, start_crash_agent, stop_agent
from support.system import outbox_drained
from support.waiting import wait_for

GRANT_STEPS = ("account_created", "password_set", "expiry_set", "enabled", "group_added",
               "verified_granted")  # fmt: skip
REVOKE_STEPS = ("group_removed", "disabled", "password_reset", "verified_revoked")


@pytest.fixture
def world(tmp_path: Path, samba_dc: SambaDc) -> Iterator[AgentWorld]:
    with running_agent_world(tmp_path, samba_dc, agent_job_lease_seconds=2.0) as running:
        yield running


def _died(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is not None


def _converged(world: AgentWorld, grant_id: str, sam: str, *, granted: bool) -> None:
    assert world.is_domain_admin(sam) is granted
    wait_for(lambda: outbox_drained(world.system, grant_id), what="the notes sent")
    assert len(world.notes(grant_id, "granted")) == 1
    assert len(world.notes(grant_id, "revoked")) == (0 if granted else 1)


@pytest.mark.parametrize("step", GRANT_STEPS)
def test_the_agent_killed_after_each_grant_step_converges_on_restart(
    world: AgentWorld, step: str
) -> None:
    config = world.enroll("agent")
    crashing = start_crash_agent(world, config, step)
    created = world.request()
    wait_for(lambda: _died(crashing), timeout=60, what=f"the agent to die after {step}")
    assert crashing.returncode == -9
    assert world.system.grant(created["id"])["state"] == "provisioning"
    world.run(config)  # the same agent, restarted
    world.system.wait_state(created["id"], "active", timeout=60)
    assert world.dc.bind(f"{world.dc.netbios}\\{created['username']}", created["password"]) == (
        True, "",
    )  # fmt: skip
    _converged(world, created["id"], created["username"], granted=True)


@pytest.mark.parametrize("step", REVOKE_STEPS)
def test_the_agent_killed_after_each_revoke_step_converges_on_restart(
    world: AgentWorld, step: str
) -> None:
    config = world.enroll("agent")
    steady = world.run(config)
    created = world.request()
    world.system.wait_state(created["id"], "active", timeout=60)
    stop_agent(steady)
    crashing = start_crash_agent(world, config, step)
    assert world.tech.post(f"/grants/{created['id']}/revoke").status_code == 202
    wait_for(lambda: _died(crashing), timeout=60, what=f"the agent to die after {step}")
    assert crashing.returncode == -9
    assert world.system.grant(created["id"])["state"] == "revoking"
    world.run(config)
    world.system.wait_state(created["id"], "revoked", timeout=60)
    assert not world.account(created["username"]).enabled
    _converged(world, created["id"], created["username"], granted=False)


def test_two_agents_one_killed_mid_job_the_other_finishes_it(world: AgentWorld) -> None:
    first, second = world.enroll("agent-1"), world.enroll("agent-2")
    crashing = start_crash_agent(world, first, "password_set")
    created = world.request()
    wait_for(lambda: _died(crashing), timeout=60, what="agent-1 to die mid-job")
    world.run(second)
    world.system.wait_state(created["id"], "active", timeout=60)
    with world.system.app.ctx.uow() as uow:
        [job] = [j for j in uow.agents.jobs_for(created["id"]) if j.kind == "grant"]
        agents = {a.name: a.id for a in uow.agents.for_customer("pedroaviary")}
    assert job.state == "done" and job.finished_by == agents["agent-2"]
    assert job.attempts == 2  # leased by agent-1, then, after its lease lapsed, by agent-2
    _converged(world, created["id"], created["username"], granted=True)
