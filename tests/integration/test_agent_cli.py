"""`jitadmin agents enroll-code|list|revoke` on the server, against a running system."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from jitadmin.agent.client import ServerClient
from jitadmin.agent.signing import new_private_key, public_key
from jitadmin.entrypoints.cli import cli as cli_app

from support.agents import start_agent_server
from support.config import SECRET_KEY
from support.system import start_system, stop_system


def test_enroll_code_list_and_revoke_from_the_cli(tmp_path: Path) -> None:
    system = start_system(tmp_path)
    server = start_agent_server(system, tmp_path)
    env = {
        "JITADMIN_DATA_DIR": str(tmp_path),
        "JITADMIN_DATABASE_URL": system.app.settings.effective_database_url,
        "JITADMIN_SECRET_KEY": SECRET_KEY,
    }
    runner = CliRunner()
    try:
        made = runner.invoke(cli_app, ["agents", "enroll-code", "pedroaviary", "--json"], env=env)
        assert made.exit_code == 0, made.output
        code = json.loads(made.stdout)["code"]
        private = new_private_key()
        client = ServerClient(server.url, private, None, server.tls.ca_pem)
        registered = client.post(
            "/agent/enroll",
            {"code": code, "name": "cli-agent", "public_key": public_key(private)},
        )
        client.close()
        listed = runner.invoke(cli_app, ["agents", "list", "pedroaviary", "--json"], env=env)
        [item] = json.loads(listed.stdout)["items"]
        assert item["id"] == registered["agent_id"] and item["state"] == "online"
        revoked = runner.invoke(cli_app, ["agents", "revoke", item["id"]], env=env)
        assert revoked.exit_code == 0 and "revoked" in revoked.stdout
        assert server.agents()[0]["state"] == "revoked"
        unknown = runner.invoke(cli_app, ["agents", "enroll-code", "nobody"], env=env)
        assert unknown.exit_code != 0
        with system.app.ctx.uow() as uow:
            kinds = [e.kind for e in uow.audit.entries(limit=500)]
        assert {"agent.enrollment_created", "agent.enrolled", "agent.revoked"} <= set(kinds)
    finally:
        server.stop()
        stop_system(system)


def test_enroll_refuses_an_unwritable_config_before_spending_the_code(tmp_path: Path) -> None:
    system = start_system(tmp_path)
    server = start_agent_server(system, tmp_path)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the config's directory should be\n")
    password_file = tmp_path / "bind.pass"
    password_file.write_text("unused-because-refused-first\n")
    try:
        code = server.enrollment_code()
        refused = CliRunner().invoke(
            cli_app,
            ["agent", "enroll", "--server", server.url, "--code", code,
             "--config", str(blocker / "agent.json"), "--dc-url", "ldaps://127.0.0.1:1",
             "--bind-user", "x@pedroaviary.local", "--bind-password-file", str(password_file)],
        )  # fmt: skip
        assert refused.exit_code != 0
        assert "its directory cannot be written; nothing was enrolled" in refused.output
        assert server.agents() == []
        # The code is still good for an enrollment that can keep its key.
        private = new_private_key()
        client = ServerClient(server.url, private, None, server.tls.ca_pem)
        registered = client.post(
            "/agent/enroll", {"code": code, "name": "second try", "public_key": public_key(private)}
        )
        client.close()
        assert registered["customer"] == "pedroaviary"
    finally:
        server.stop()
        stop_system(system)
