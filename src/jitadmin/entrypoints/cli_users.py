"""`jitadmin users show|update|reset-password|end-sessions` (registered by ``cli``).

The CLI acts as the unrestricted admin ``system:cli`` (whoever runs it holds the database and
the key); every change is audited under that name."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from jitadmin.core.clock import iso
from jitadmin.entrypoints.cli_security import CLI_ADMIN
from jitadmin.services import users
from jitadmin.wiring import App

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _shown(detail: users.UserDetail) -> dict[str, Any]:
    user = detail.user
    return {
        "username": user.username, "role": user.role,
        "customers": None if user.customers is None else list(user.customers),
        "disabled": user.disabled, "created_at": iso(detail.created_at),
        "sessions": detail.sessions, "tokens": detail.tokens,
        "second_factor": detail.second_factor, "oidc_issuer": detail.oidc_issuer,
    }  # fmt: skip


def _echo(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(record))
        return
    for key, value in record.items():
        typer.echo(f"{key}: {'all' if key == 'customers' and value is None else value}")


def register(users_cli: typer.Typer, make_app: Callable[[], App]) -> None:
    @users_cli.command("show")
    def users_show(name: str, as_json: AsJson = False) -> None:
        """A user's role, customers, status, web sessions and token count."""
        _echo(_shown(users.show_user(make_app().ctx, CLI_ADMIN, name)), as_json)

    @users_cli.command("update")
    def users_update(
        name: str,
        role: Annotated[str | None, typer.Option(help="admin|technician|approver|auditor")] = None,
        customer: Annotated[
            list[str] | None, typer.Option(help="Restrict to these customers (repeat).")
        ] = None,
        all_customers: Annotated[
            bool, typer.Option("--all-customers", help="Let the user use every customer.")
        ] = False,
        disable: Annotated[
            bool | None,
            typer.Option(
                "--disable/--enable", help="Disable (sessions end, tokens stop) or enable."
            ),
        ] = None,
        revoke_grants: Annotated[
            bool, typer.Option("--revoke-grants", help="Also revoke the user's unfinished grants.")
        ] = False,
        as_json: AsJson = False,
    ) -> None:
        """Change a user's role, customers or disabled state (audited)."""
        if customer and all_customers:
            typer.echo("error: --customer and --all-customers exclude each other", err=True)
            raise typer.Exit(1)
        change = users.UserChange(
            role=role,
            customers=tuple(customer) if customer else None,
            set_customers=bool(customer) or all_customers,
            disabled=disable,
            revoke_grants=revoke_grants,
        )
        done = users.update_user(make_app().ctx, CLI_ADMIN, name, change)
        record = {
            **_shown(done.detail), "sessions_ended": done.sessions_ended,
            "revoked_grants": done.revoked_grants,
            "not_revoked": [{"id": g, "reason": why} for g, why in done.not_revoked],
        }  # fmt: skip
        _echo(record, as_json)

    @users_cli.command("reset-password")
    def users_reset_password(name: str, as_json: AsJson = False) -> None:
        """A new generated password, printed once; the old one stops, web sessions end."""
        reset = users.reset_password(make_app().ctx, CLI_ADMIN, name)
        record = {"username": reset.username, "password": reset.password,
                  "sessions_ended": reset.sessions_ended}  # fmt: skip
        _echo(record, as_json)

    @users_cli.command("end-sessions")
    def users_end_sessions(name: str, as_json: AsJson = False) -> None:
        """End every web session of the user."""
        ended = users.end_sessions(make_app().ctx, CLI_ADMIN, name)
        _echo({"username": name, "sessions_ended": ended}, as_json)

    @users_cli.command("reset-second-factor")
    def users_reset_second_factor(name: str, as_json: AsJson = False) -> None:
        """Remove the user's TOTP and recovery codes (lost phone); they enrol again."""
        done = users.reset_second_factor(make_app().ctx, CLI_ADMIN, name)
        _echo({"username": name, "reset": done}, as_json)
