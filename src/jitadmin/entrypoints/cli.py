"""The `jitadmin` command line. User mistakes print one line and exit non-zero.

Command and option names are a public interface: scripts outside the repository call them.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import uvicorn
from pydantic import SecretStr, ValidationError

from jitadmin.connectors import REGISTRY, emulator_world
from jitadmin.core.errors import JitError
from jitadmin.db import migrate
from jitadmin.db.files import private_dir
from jitadmin.entrypoints import cli_agents, cli_security, cli_users, logging_redaction
from jitadmin.entrypoints.api.app import create_app
from jitadmin.entrypoints.api.schemas import grant_out
from jitadmin.entrypoints.demo import (
    demo_document,
    egress_allow,
    load_or_create_key,
    seed,
    write_json,
)
from jitadmin.entrypoints.worker import attach_worker
from jitadmin.ports import User
from jitadmin.services import admin, audit_anchor, grants
from jitadmin.settings import Settings
from jitadmin.wiring import App, build

PSA_CHOICES = REGISTRY.catalog.ticket_systems
IDP_CHOICES = REGISTRY.catalog.identity_providers

cli = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Just-in-time admin access for MSPs.",
)
db_cli = typer.Typer(no_args_is_help=True, help="Database schema.")
users_cli = typer.Typer(no_args_is_help=True, help="People and their API tokens.")
keys_cli = typer.Typer(no_args_is_help=True, help="Secret keys.")
audit_cli = typer.Typer(no_args_is_help=True, help="The audit trail.")
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(audit_cli, name="audit")
connections_cli = typer.Typer(no_args_is_help=True, help="Customers' M365 and AD connections.")
cli.add_typer(connections_cli, name="connections")
agents_cli = typer.Typer(no_args_is_help=True, help="Customers' on-prem agents (server side).")
cli.add_typer(agents_cli, name="agents")
agent_cli = typer.Typer(no_args_is_help=True, help="The on-prem agent (customer side).")
cli.add_typer(agent_cli, name="agent")

Host = Annotated[str, typer.Option(help="Listen address (loopback by default).")]
Port = Annotated[int, typer.Option(help="Listen port.")]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        where = "_".join(str(p) for p in first["loc"]).upper()
        # A check across settings (JITADMIN_OIDC_*...) names its variables in the message.
        fail(
            f"JITADMIN_{where}: {first['msg']}"
            if where
            else first["msg"].removeprefix("Value error, ")
        )


def _app(upgrade: bool = False) -> App:
    try:
        return build(_settings(), upgrade=upgrade)
    except ValueError as error:
        fail(str(error))


def _actor(app: App, username: str) -> Any:
    with app.ctx.uow() as uow:
        user = uow.users.get(username)
    if user is None:
        fail(f"--as: no user {username!r} (create one with `jitadmin users add`)")
    return user


def _logging() -> None:
    # Every handler masks secrets (entrypoints/logging_redaction.py); uvicorn logs through them.
    logging_redaction.install(logging.INFO)


@cli.command()
def demo(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its SQLite database.")
    ] = Path(".demo"),
    psa: Annotated[str, typer.Option(help="|".join(PSA_CHOICES))] = PSA_CHOICES[0],
) -> None:
    """Run the whole product on embedded defaults with built-in emulators."""
    if psa not in PSA_CHOICES:
        fail(f"--psa {psa}: must be one of {', '.join(PSA_CHOICES)}")
    _logging()
    private_dir(data_dir)
    database_file = data_dir / "jitadmin.db"
    # The emulators start empty on every run, so the demo database does too.
    for stale in (database_file, data_dir / "jitadmin.db-wal", data_dir / "jitadmin.db-shm"):
        stale.unlink(missing_ok=True)
    settings = _settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{database_file.resolve()}",
        secret_key=SecretStr(load_or_create_key(data_dir)),
        egress_allow=egress_allow(host, _settings().egress_allow),
    )
    try:
        app = build(settings)
    except ValueError as error:  # JITADMIN_OIDC_ROLE_MAP naming an unknown role...
        fail(str(error))
    world = emulator_world(psa_kind=psa)
    world.start(host)
    users = seed(app, world, admin_totp=bool(app.ctx.security.totp_required_roles))
    url = f"http://{host}:{port}"
    write_json(data_dir / "demo.json", demo_document(app, url, users, world))
    typer.echo(f"jitadmin demo at {url}  (emulators at {world.url}, PSA: {psa})")
    for role, user in users.items():
        second = f" / TOTP secret {user['totp_secret']}" if "totp_secret" in user else ""
        typer.echo(f"  {role}: {user['username']} / password {user['password']}{second}")
    typer.echo(f"  API tokens and emulator endpoints: {(data_dir / 'demo.json').resolve()}")
    _oidc_line(app, url)
    _serve(app, host, port, with_worker=True)
    world.stop()


@cli.command()
def emulate(
    host: Host = "127.0.0.1",
    port: Port = 8100,
    out: Annotated[Path | None, typer.Option(help="Write endpoints and credentials here.")] = None,
) -> None:
    """Serve the Graph and PSA emulators alone, seeded like the demo."""
    world = emulator_world()
    world.start(host, port)
    if out is not None:
        write_json(out, world.describe())
    typer.echo(f"emulators at {world.url}")
    _wait_for_signal()
    world.stop()


def _oidc_line(app: App, url: str) -> None:
    """What to register at the identity provider, when single sign-on is set up."""
    if app.oidc is not None:
        base = app.settings.public_url.rstrip("/") or url
        name, issuer = app.oidc.display_name, app.oidc.policy.issuer
        typer.echo(f"  single sign-on: 'Sign in with {name}' ({issuer}; "
                   f"redirect URI {base}/auth/oidc/callback)")  # fmt: skip


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _serve(app: App, host: str, port: int, *, with_worker: bool) -> None:
    worker = attach_worker(app) if with_worker else None
    if worker is not None:
        worker.start()
    try:
        uvicorn.run(
            create_app(app), host=host, port=port, log_level="info", log_config=None,
            proxy_headers=False,  # create_app trusts JITADMIN_FORWARDED_ALLOW_IPS only
        )  # fmt: skip
    finally:
        if worker is not None:
            worker.stop()
        app.close()


@cli.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000, no_worker: bool = False) -> None:
    """API, web and (unless --no-worker) the worker in one process."""
    _logging()
    app = _app(upgrade=True)
    _oidc_line(app, f"http://{host}:{port}")
    _serve(app, host, port, with_worker=not no_worker)


@cli.command()
def worker(
    once: Annotated[bool, typer.Option(help="Process what is due now, then exit.")] = False,
) -> None:
    """Run a worker alone."""
    _logging()
    app = _app(upgrade=False)
    w = attach_worker(app)
    if once:
        typer.echo(f"processed {w.run_until_idle()} item(s)")
        return
    w.start()
    _wait_for_signal()
    w.stop()


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest version (needs JITADMIN_SECRET_KEY: data
    written by older versions is keyed with it on the way, see docs/security.md)."""
    app = _app(upgrade=True)
    try:
        typer.echo(f"database at revision {migrate.current(app.database.engine)}")
    finally:
        app.close()


@users_cli.command("add")
def users_add(
    name: str,
    role: Annotated[str, typer.Option(help="admin|technician|approver|auditor")],
    customer: Annotated[list[str] | None, typer.Option(help="Restrict to these customers.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a user; prints the password and API token once."""
    new = admin.add_user(_app(upgrade=True).ctx, None, username=name, role=role, customers=customer)
    record = {"username": new.user.username, "password": new.password, "token": new.token}
    if as_json:
        typer.echo(json.dumps(record))
    else:
        typer.echo(f"user {name} ({role})\npassword: {new.password}\ntoken: {new.token}")


@keys_cli.command("generate")
def keys_generate() -> None:
    """Print a new random secret key for JITADMIN_SECRET_KEY."""
    typer.echo(secrets.token_urlsafe(48))


@audit_cli.command("verify")
def audit_verify(
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="A value from `jitadmin audit checkpoint`: the chain must still hold it."
        ),
    ] = None,
) -> None:
    """Check the keyed chain and its head; exit 0 when intact, else name the first bad entry."""
    ctx = _app().ctx
    if checkpoint is not None:
        verdict = audit_anchor.verify_checkpoint(ctx, checkpoint)
        if not verdict.ok:
            fail(verdict.message)
        typer.echo(verdict.message)
        return
    checked, bad = admin.verify_audit(ctx)
    if bad is not None:
        fail(f"audit chain broken at entry {bad} ({checked} entries before it are intact)")
    typer.echo(f"audit chain intact: {checked} entries")


@audit_cli.command("checkpoint")
def audit_checkpoint() -> None:
    """Print the chain's head, signed, to keep outside the database (verify --checkpoint)."""
    typer.echo(audit_anchor.checkpoint(_app().ctx).value)


cli_security.register(keys_cli, audit_cli, cli, _app)
cli_users.register(users_cli, _app)
cli_agents.register_admin(agents_cli, _app)
cli_agents.register_agent(agent_cli)

As = Annotated[str, typer.Option("--as", help="Act as this jitadmin user.")]


@cli.command("request")
def request_cmd(
    as_user: As,
    customer: Annotated[str, typer.Option()],
    ticket: Annotated[str, typer.Option()],
    minutes: Annotated[int, typer.Option()],
    reason: Annotated[str, typer.Option()],
    identity_provider: Annotated[
        str, typer.Option("--idp", help="|".join(IDP_CHOICES))
    ] = IDP_CHOICES[0],
) -> None:
    """Request admin access; prints the one-time password once."""
    app = _app()
    result = grants.request_grant(
        app.ctx, _actor(app, as_user), customer=customer, identity_provider=identity_provider,
        ticket_id=ticket, duration_minutes=minutes, reason=reason,
    )  # fmt: skip
    typer.echo(json.dumps({**grant_out(result.grant), "password": result.password}, indent=2))


@cli.command("list")
def list_cmd(as_user: As, state: str | None = None, customer: str | None = None) -> None:
    """List grants you may see."""
    app = _app()
    for g in grants.list_grants(app.ctx, _actor(app, as_user), state=state, customer=customer):
        typer.echo(
            f"{g.id}  {g.state.value:<13} {g.customer:<16} {g.identity_provider:<4} "
            f"{g.username or '-'}  until {g.expires_at.isoformat()}"
        )


@cli.command("show")
def show_cmd(grant_id: str, as_user: As) -> None:
    """Show one grant with its events."""
    app = _app()
    grant, events = grants.show_grant(app.ctx, _actor(app, as_user), grant_id)
    typer.echo(json.dumps({**grant_out(grant), "events": [e.kind for e in events]}, indent=2))


@cli.command("revoke")
def revoke_cmd(grant_id: str, as_user: As) -> None:
    """Revoke a grant now (the worker carries it out and verifies)."""
    app = _app()
    grant = grants.revoke_now(app.ctx, _actor(app, as_user), grant_id)
    typer.echo(f"{grant.id} {grant.state.value}")


@cli.command("extend")
def extend_cmd(grant_id: str, as_user: As, minutes: Annotated[int, typer.Option()]) -> None:
    """Extend an active grant."""
    app = _app()
    grant = grants.extend_grant(app.ctx, _actor(app, as_user), grant_id, minutes)
    typer.echo(f"{grant.id} now expires at {grant.expires_at.isoformat()}")


# Whoever can run the CLI holds the database and its key: an administrator by definition.
CLI_ADMIN = User("system:cli", "admin")


def _secret_from(path: Path) -> str:
    """A secret from a file (or stdin for ``-``), so it stays out of argv and shell history."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    return text.rstrip("\r\n")


@connections_cli.command("set-ad")
def connections_set_ad(
    customer: Annotated[str, typer.Argument(help="The customer's slug.")],
    url: Annotated[str, typer.Option(help="ldaps://dc.example.local[:636], or ldap:// + StartTLS")],
    bind_user: Annotated[str, typer.Option(help="UPN, DN or DOMAIN\\user to bind as.")],
    bind_password_file: Annotated[Path, typer.Option(help="Bind password file; - = stdin")],
    ca_pem_file: Annotated[
        Path | None, typer.Option(help="PEM of the CA that issued the DC's certificate.")
    ] = None,
    base_dn: Annotated[str | None, typer.Option(help="Default: the DC's own domain.")] = None,
    ou: Annotated[str | None, typer.Option(help="Where tech accounts live (CN=Users).")] = None,
    other_dcs: Annotated[
        str | None,
        typer.Option(help="The domain's other writable DCs (LDAPS URLs, comma-separated)."),
    ] = None,
    discover_dcs: Annotated[
        bool, typer.Option(help="Also find the writable DCs under CN=Sites,CN=Configuration.")
    ] = False,
    protected_users: Annotated[
        bool, typer.Option(help="Tech accounts join Protected Users for the grant.")
    ] = False,
    time_bound_membership: Annotated[
        bool, typer.Option(help="Domain Admins with a TTL where the forest has the PAM feature.")
    ] = False,
) -> None:
    """Save a customer's AD connection; the bind password is stored encrypted."""
    body = {
        "url": url, "bind_user": bind_user, "bind_password": _secret_from(bind_password_file),
        "ca_pem": ca_pem_file.read_text() if ca_pem_file else None, "base_dn": base_dn, "ou": ou,
        "other_dcs": other_dcs, "discover_dcs": discover_dcs, "protected_users": protected_users,
        "time_bound_membership": time_bound_membership,
    }  # fmt: skip
    saved = admin.put_connection(_app(upgrade=True).ctx, CLI_ADMIN, customer, "ad", body)
    shown = {k: ("(set)" if k == "ca_pem" else v) for k, v in saved.items()}
    typer.echo(json.dumps({"customer": customer, "kind": "ad", "settings": shown}))


@connections_cli.command("test")
def connections_test(
    customer: Annotated[str, typer.Argument(help="The customer's slug.")],
    kind: Annotated[str, typer.Argument(help="m365 or ad")],
) -> None:
    """Test a connection now: for AD, bind, find Domain Admins and check the bind's rights."""
    for finding in admin.check_connection(_app().ctx, CLI_ADMIN, customer, kind):
        typer.echo(f"ok: {finding}")


def main() -> None:
    try:
        cli()
    except JitError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
    except (ValueError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
