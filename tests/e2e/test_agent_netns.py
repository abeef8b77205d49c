"""Outbound only, for real: a Samba DC of this test's own and the agent run in a network
namespace (joined to the host by a veth pair), so that jitadmin cannot reach the DC at all —
asserted, with jitadmin's own LDAPS adapter and with plain TCP — while the agent reaches
jitadmin over HTTPS. On Prem AD is granted and revoked through the agent, with both notes, and
checked on that DC from inside the namespace.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider, AdConnection
from jitadmin.core.errors import TransientError
from jitadmin.emulators.seed import CUSTOMERS

from support.ad import _read_env, unique_requester
from support.agents import REPO, enroll_agent, start_agent, start_agent_server
from support.config import TEST_EGRESS
from support.netns import DC_IP, Netns, dc_in, netns
from support.system import outbox_drained, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]
PROBE = REPO / "tests" / "support" / "netns_probe.py"


def _probe(space: Netns, env_file: Path, sam: str, password: str) -> dict[str, bool]:
    done = subprocess.run(
        space.command(sys.executable, str(PROBE), str(env_file), sam, password),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    shown: dict[str, bool] = json.loads(done.stdout)
    return shown


def _unreachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return False
    except OSError:
        return True


@pytest.mark.slow
def test_outbound_only_grant_and_revoke_through_the_agent_in_its_own_namespace(
    tmp_path: Path,
) -> None:
    with netns() as space, dc_in(space, tmp_path) as env_file:
        values = _read_env(env_file)
        password = Path(values["SAMBA_DC_ADMIN_PASSWORD_FILE"]).read_text().strip()
        # jitadmin's side cannot reach the DC: not its address, not the namespace's.
        assert _unreachable(DC_IP, 636) and _unreachable(space.ns_ip, 636)
        direct = ActiveDirectoryIdentityProvider(
            AdConnection(values["SAMBA_DC_URL"], values["SAMBA_DC_ADMIN_UPN"], password,
                         Path(values["SAMBA_DC_CA_FILE"]).read_text()),
            connect_timeout_s=3.0, egress=TEST_EGRESS,
        )  # fmt: skip
        with pytest.raises(TransientError):
            direct.tenant_id()

        system = start_system(tmp_path)
        server = start_agent_server(system, tmp_path, host=space.host_ip)
        agent = None
        try:
            password_file = tmp_path / "bind.pass"
            password_file.write_text(password)
            password_file.chmod(0o600)
            config = tmp_path / "agent.json"
            enroll_agent(
                server, config, dc_url=values["SAMBA_DC_URL"],
                bind_user=values["SAMBA_DC_ADMIN_UPN"], password_file=password_file,
                ca_pem_file=Path(values["SAMBA_DC_CA_FILE"]), name="netns-agent",
                netns=space.name,
            )  # fmt: skip
            agent = start_agent(config, tmp_path / "agent.log", netns=space.name)
            assert server.agents()[0]["domain"] == "onprem.local"
            with system.client("admin") as admin:
                made = admin.post("/users", json={"username": unique_requester(),
                                                  "role": "technician"})  # fmt: skip
            with httpx.Client(
                base_url=f"{system.url}/api/v1", timeout=30,
                headers={"Authorization": f"Bearer {made.json()['token']}"},
            ) as tech:  # fmt: skip
                created = tech.post(
                    "/grants",
                    json={"customer": PEDRO.slug, "identity_provider": "ad_agent",
                          "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
                          "reason": "Outbound-only proof"},
                ).json()  # fmt: skip
                system.wait_state(created["id"], "active", timeout=90)
                sam, one_time = created["username"], created["password"]
                granted = _probe(space, env_file, sam, one_time)
                assert granted == {"exists": True, "enabled": True, "domain_admin": True,
                                   "logon": True}  # fmt: skip
                assert tech.post(f"/grants/{created['id']}/revoke").status_code == 202
                system.wait_state(created["id"], "revoked", timeout=90)
            revoked = _probe(space, env_file, sam, one_time)
            assert revoked == {"exists": True, "enabled": False, "domain_admin": False,
                               "logon": False}  # fmt: skip
            wait_for(lambda: outbox_drained(system, created["id"]), what="both notes")
            notes = system.ticket_notes(PEDRO.open_ticket_ids[0])
            for event in ("granted", "revoked"):
                marker = f"jitadmin:{created['id']}:{event}"
                assert len([n for n in notes if marker in n]) == 1, event
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(timeout=30)
            server.stop()
            stop_system(system)
