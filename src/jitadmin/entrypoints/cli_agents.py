"""`jitadmin agents …` (the server's side: enrollment codes, the agent list, revoking) and
`jitadmin agent enroll|run` (the on-prem agent itself, on the customer's machine)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

import jitadmin
from jitadmin.agent import config as agent_config
from jitadmin.agent import dc
from jitadmin.agent.client import ServerClient, ServerRefusedError, ServerUnreachableError
from jitadmin.agent.runner import AgentRunner
from jitadmin.agent.signing import new_private_key, public_key
from jitadmin.core.clock import iso
from jitadmin.core.errors import AdapterError
from jitadmin.entrypoints import logging_redaction
from jitadmin.entrypoints.cli_security import CLI_ADMIN
from jitadmin.services import agents
from jitadmin.wiring import App

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def register_admin(agents_cli: typer.Typer, make_app: Callable[[], App]) -> None:
    @agents_cli.command("enroll-code")
    def enroll_code(slug: str, as_json: AsJson = False) -> None:
        """A one-time code (15 minutes) for enrolling an agent of customer SLUG (audited)."""
        code = agents.create_enrollment(make_app().ctx, CLI_ADMIN, slug)
        shown = {"code": code.code, "expires_at": iso(code.expires_at)}
        typer.echo(json.dumps(shown) if as_json else f"code: {code.code}\nexpires_at: "
                   f"{shown['expires_at']}")  # fmt: skip

    @agents_cli.command("list")
    def list_agents(slug: str, as_json: AsJson = False) -> None:
        """The customer's agents and their state (online, offline, revoked)."""
        views = agents.list_agents(make_app().ctx, CLI_ADMIN, slug)
        rows = [
            {"id": v.agent.id, "name": v.agent.name, "state": v.state,
             "last_seen_at": iso(v.agent.last_seen_at), "version": v.agent.version}
            for v in views
        ]  # fmt: skip
        if as_json:
            typer.echo(json.dumps({"items": rows}))
            return
        for row in rows:
            typer.echo(f"{row['id']}  {row['state']:8}  {row['name']}  {row['last_seen_at']}")

    @agents_cli.command("revoke")
    def revoke(agent_id: str) -> None:
        """Revoke an agent at once: its next request is refused (audited)."""
        agent = agents.revoke_agent(make_app().ctx, CLI_ADMIN, agent_id)
        typer.echo(f"revoked {agent.id} ({agent.name})")


Server = Annotated[str, typer.Option("--server", help="jitadmin's https:// URL.")]
ConfigFile = Annotated[Path, typer.Option("--config", help="The agent's configuration file.")]


def _read(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as error:
        _fail(f"{what}: {error.strerror}")


def register_agent(agent_cli: typer.Typer) -> None:
    @agent_cli.command("enroll")
    def enroll(
        server: Server,
        code: Annotated[str, typer.Option("--code", help="The one-time enrollment code.")],
        config: ConfigFile,
        dc_url: Annotated[str, typer.Option("--dc-url", help="ldaps://dc.corp.local")],
        bind_user: Annotated[str, typer.Option("--bind-user", help="user@domain")],
        bind_password_file: Annotated[Path, typer.Option("--bind-password-file")],
        ca_pem_file: Annotated[Path | None, typer.Option("--ca-pem-file")] = None,
        server_ca_file: Annotated[Path | None, typer.Option("--server-ca-file")] = None,
        name: Annotated[str | None, typer.Option("--name")] = None,
        failsafe_grace_seconds: Annotated[float, typer.Option()] = agent_config.DEFAULT_GRACE_S,
        poll_seconds: Annotated[float, typer.Option()] = agent_config.DEFAULT_POLL_S,
    ) -> None:
        """Make this machine's key pair, check the DC, and register with the server."""
        # Checked before the code is spent: a config that cannot be written after a successful
        # enrollment would leave a registered agent whose private key is lost.
        _require_writable(config)
        password = (_read(bind_password_file, "--bind-password-file") or "").strip()
        settings = agent_config.DcSettings(
            dc_url, bind_user, password, _read(ca_pem_file, "--ca-pem-file")
        )
        try:
            tenant, domain = dc.provider(settings).domain_names()
        except AdapterError as error:
            _fail(f"the DC at {dc_url}: {error}")
        private = new_private_key()  # made here; only its public half is sent
        agent_name = name or f"agent-{domain}"
        server_ca = _read(server_ca_file, "--server-ca-file")
        client = ServerClient(server, private, None, server_ca)
        body = {"code": code, "name": agent_name, "public_key": public_key(private),
                "version": jitadmin.__version__, "tenant_id": tenant, "domain": domain}  # fmt: skip
        try:
            registered = client.post("/agent/enroll", body)
        except (ServerRefusedError, ServerUnreachableError) as error:
            _fail(f"enrollment refused or server unreachable: {error}")
        finally:
            client.close()
        agent_config.save(
            config,
            agent_config.AgentConfig(
                server=server, agent_id=registered["agent_id"], customer=registered["customer"],
                name=agent_name, private_key=private, dc=settings, server_ca_pem=server_ca,
                failsafe_grace_seconds=failsafe_grace_seconds, poll_seconds=poll_seconds,
            ),
        )  # fmt: skip
        typer.echo(f"enrolled {registered['agent_id']} for {registered['customer']} "
                   f"(domain {domain}); configuration in {config}")  # fmt: skip

    @agent_cli.command("run")
    def run(config: ConfigFile) -> None:
        """Serve jobs until stopped (SIGTERM or Ctrl-C): outbound HTTPS only."""
        logging_redaction.install(logging.INFO)
        loaded = agent_config.load(config)
        stop = threading.Event()

        def _stop(*_: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        AgentRunner(loaded, config, stop).run()


def _require_writable(config: Path) -> None:
    """The config's directory must exist or be creatable, and be writable."""
    existing = next((p for p in (config.parent, *config.parent.parents) if p.exists()), Path("/"))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        _fail(f"--config {config}: its directory cannot be written; nothing was enrolled")
