"""A whole jitadmin with its HTTPS side for on-prem agents, the shared Samba DC and the real
agent as subprocesses (the e2e and reliability tests of the agent path)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from jitadmin.emulators.seed import CUSTOMERS

from support.ad import DcUser, SambaDc, unique_requester
from support.agents import (
    REPO,
    AgentServer,
    agent_env,
    enroll_agent,
    start_agent,
    start_agent_server,
)
from support.system import System, start_system, stop_system

PEDRO = CUSTOMERS[0]
CRASH_AGENT = REPO / "tests" / "support" / "crash_agent.py"


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


@contextmanager
def running_agent_world(tmp: Path, dc: SambaDc, **overrides: Any) -> Iterator[AgentWorld]:
    """A system, its HTTPS side for agents and a technician of this test's own."""
    system = start_system(tmp, **overrides)
    server = start_agent_server(system, tmp)
    agents: list[subprocess.Popen[bytes]] = []
    with system.client("admin") as admin:
        made = admin.post("/users", json={"username": unique_requester(), "role": "technician"})
    tech = httpx.Client(
        base_url=f"{system.url}/api/v1",
        headers={"Authorization": f"Bearer {made.json()['token']}"},
        timeout=30,
    )
    try:
        yield AgentWorld(system, server, dc, tmp, tech, agents)
    finally:
        tech.close()
        for process in agents:
            stop_agent(process)
        server.stop()
        stop_system(system)


def start_crash_agent(world: AgentWorld, config: Path, step: str) -> subprocess.Popen[bytes]:
    """The agent, dying by SIGKILL once the server accepted its report of ``step``."""
    with (world.tmp / f"{config.stem}-crash-{step}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(CRASH_AGENT), str(config)], stdout=log,
            stderr=subprocess.STDOUT, env=agent_env(JITADMIN_TEST_AGENT_CRASH_AFTER=step),
        )  # fmt: skip
    world.agents.append(process)
    return process
