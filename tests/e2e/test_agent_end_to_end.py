"""On Prem AD through the on-prem agent: jitadmin over HTTPS on loopback, the real agent as a
subprocess (enrolled with a one-time code, its key made by itself) against the shared Samba
DC, and every check of access made on the DC itself.

The server holds no LDAP URL and no bind password for this customer; it never connects to the
DC. A grant and its revocation each leave exactly one ticket note.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ad import SambaDc
from support.agent_world import PEDRO, AgentWorld, running_agent_world, stop_agent
from support.agents import agent_env, jitadmin_command
from support.connect_proxy import start_connect_proxy
from support.system import outbox_drained
from support.waiting import wait_for


@pytest.fixture
def agent_world(tmp_path: Path, samba_dc: SambaDc) -> Iterator[AgentWorld]:
    with running_agent_world(tmp_path, samba_dc) as world:
        yield world


def test_grant_and_revoke_on_prem_ad_through_the_agent(agent_world: AgentWorld) -> None:
    world = agent_world
    config_file = world.enroll("dc1-agent")
    config = json.loads(config_file.read_text())
    assert config_file.stat().st_mode & 0o777 == 0o600
    assert config["dc"]["bind_password"] == world.dc.admin_password  # on the agent's side only
    [agent] = world.server.agents()
    assert agent["id"] == config["agent_id"] and agent["domain"] == world.dc.dns_name
    # The server has no way to the DC: no URL, no bind user, no password.
    with world.system.app.ctx.uow() as uow:
        assert uow.connections.get(PEDRO.slug, "ad") is None
        record = uow.connections.get(PEDRO.slug, "ad_agent")
    assert record is not None and record.settings == {}
    assert world.system.app.ctx.open_secrets(record) == {}

    process = world.run(config_file)
    created = world.request()
    sam, password = created["username"], created["password"]
    world.system.wait_state(created["id"], "active", timeout=60)
    assert world.is_domain_admin(sam)
    assert world.dc.bind(f"{world.dc.netbios}\\{sam}", password) == (True, "")
    granted = wait_for(lambda: world.notes(created["id"], "granted"), what="the grant note")
    assert len(granted) == 1 and f"The tech account {sam} is now enabled" in granted[0]

    revoked = world.tech.post(f"/grants/{created['id']}/revoke")
    assert revoked.status_code == 202, revoked.text
    world.system.wait_state(created["id"], "revoked", timeout=60)
    user = world.account(sam)
    assert not user.enabled and not world.is_domain_admin(sam)
    assert world.dc.bind(f"{world.dc.netbios}\\{sam}", password)[0] is False
    wait_for(lambda: outbox_drained(world.system, created["id"]), what="both notes sent")
    assert len(world.notes(created["id"], "granted")) == 1
    [note] = world.notes(created["id"], "revoked")
    assert f"The tech account {sam} has been removed from Domain Admins" in note

    # The steps the agent reported are the grant's own, as with the direct adapter.
    detail = world.system.grant(created["id"])
    kinds = [e["kind"] for e in detail["events"]]
    for kind in (
        "agent.job_queued", "account.password_set", "account.group_added", "agent.job_done",
        "account.group_removed", "account.verified_revoked",
    ):  # fmt: skip
        assert kind in kinds, kind
    assert process.poll() is None, "the agent keeps running"
    stop_agent(process)
    assert process.returncode == 0
    log = (world.tmp / "dc1-agent.log").read_text()
    assert password not in log and world.dc.admin_password not in log


def test_the_agent_goes_through_https_proxy_when_it_is_set(agent_world: AgentWorld) -> None:
    world = agent_world
    config = world.enroll("proxied")
    proxy = start_connect_proxy()
    try:
        log = world.tmp / "proxied.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                jitadmin_command("agent", "run", "--config", str(config)), stdout=out,
                stderr=subprocess.STDOUT,
                env=agent_env(HTTPS_PROXY=proxy.url, NO_PROXY="", no_proxy=""),
            )  # fmt: skip
        world.agents.append(process)
        created = world.request()
        world.system.wait_state(created["id"], "active", timeout=60)
        server = world.server.url.removeprefix("https://")
        assert proxy.targets and set(proxy.targets) == {server}
    finally:
        proxy.stop()
