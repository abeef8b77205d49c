"""On Prem AD through the on-prem agent: jitadmin over HTTPS on loopback, the real agent as a
subprocess (enrolled with a one-time code, its key made by itself) against the shared Samba
DC, and every check of access made on the DC itself.

The server holds no LDAP URL and no bind password for this customer; it never connects to the
DC. A grant and its revocation each leave exactly one ticket note.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.emulators.seed import CUSTOMERS

from support.ad import DcUser, SambaDc, unique_requester
from support.agents import AgentServer, enroll_agent, start_agent, start_agent_server
from support.system import System, outbox_drained, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


@dataclass
class AgentWorld:
    system: System
    server: AgentServer
    dc: SambaDc
    tmp: Path
    tech: httpx.Client
    agents: list[subprocess.Popen[bytes]]

    def enroll(self, name: str, **options: Any) -> Path:
        config = self.tmp / f"{name}.json"
        password = self.tmp / "bind.pass"
        password.write_text(self.dc.admin_password + "\n")
        password.chmod(0o600)
        ca = self.tmp / "dc-ca.pem"
        ca.write_text(self.dc.ca_pem)
        enroll_agent(
            self.server, config, dc_url=self.dc.url, bind_user=self.dc.admin_upn,
            password_file=password, ca_pem_file=ca, name=name, **options,
        )  # fmt: skip
        return config

    def run(self, config: Path) -> subprocess.Popen[bytes]:
        process = start_agent(config, self.tmp / f"{config.stem}.log")
        self.agents.append(process)
        return process

    def request(self, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "customer": PEDRO.slug, "identity_provider": "ad_agent",
            "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
            "reason": "Patch the domain controller",
        }  # fmt: skip
        body.update(changes)
        made = self.tech.post("/grants", json=body)
        assert made.status_code == 202, made.text
        created: dict[str, Any] = made.json()
        return created

    def account(self, sam: str) -> DcUser:
        with self.dc.admin() as admin:
            user = admin.find(sam)
        assert user is not None, f"{sam} is not in the domain"
        return user

    def is_domain_admin(self, sam: str) -> bool:
        with self.dc.admin() as admin:
            admins = admin.domain_admins_dn().lower()
        user = self.account(sam)
        return user.enabled and admins in user.member_of

    def notes(self, grant_id: str, event: str) -> list[str]:
        marker = f"jitadmin:{grant_id}:{event}"
        return [n for n in self.system.ticket_notes(PEDRO.open_ticket_ids[0]) if marker in n]


def stop_agent(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def agent_world(tmp_path: Path, samba_dc: SambaDc) -> Iterator[AgentWorld]:
    system = start_system(tmp_path)
    server = start_agent_server(system, tmp_path)
    agents: list[subprocess.Popen[bytes]] = []
    with system.client("admin") as admin:
        made = admin.post("/users", json={"username": unique_requester(), "role": "technician"})
    tech = httpx.Client(
        base_url=f"{system.url}/api/v1",
        headers={"Authorization": f"Bearer {made.json()['token']}"},
        timeout=30,
    )
    try:
        yield AgentWorld(system, server, samba_dc, tmp_path, tech, agents)
    finally:
        tech.close()
        for process in agents:
            stop_agent(process)
        server.stop()
        stop_system(system)


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
