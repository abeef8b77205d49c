"""CLI commands for key rotation, audit export and API tokens (registered by ``cli``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn, TextIO

import typer

from jitadmin.core.clock import iso
from jitadmin.db.files import private_file
from jitadmin.entrypoints.api.schemas import event_out
from jitadmin.ports import AuditQuery, User
from jitadmin.services import admin, console, keys
from jitadmin.wiring import App

AppFactory = Callable[[], App]
CLI_ADMIN = User("system:cli", "admin")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def register(
    keys_cli: typer.Typer, audit_cli: typer.Typer, root: typer.Typer, make_app: AppFactory
) -> None:
    tokens_cli = typer.Typer(no_args_is_help=True, help="API tokens (stored hashed).")
    root.add_typer(tokens_cli, name="tokens")

    @keys_cli.command("rotate")
    def keys_rotate(
        batch: Annotated[int, typer.Option(min=1, max=10000, help="Rows per transaction.")] = 100,
    ) -> None:
        """Re-seal every secret under JITADMIN_SECRET_KEY (old keys: JITADMIN_PREVIOUS_SECRET_KEYS).

        Runs while the service runs; each batch is its own transaction; running it again is
        harmless. Remove the old key from PREVIOUS_SECRET_KEYS only after it reports 0 left.
        """
        report = keys.rotate(make_app().ctx, actor=CLI_ADMIN.username, batch_size=batch)
        for column, examined in report.examined.items():
            typer.echo(f"{column}: {examined} sealed, {report.resealed[column]} re-sealed")
        typer.echo(
            f"re-sealed {report.total_resealed}; skipped (changed meanwhile) {report.skipped}"
        )

    @audit_cli.command("export")
    def audit_export(
        since: Annotated[
            datetime | None, typer.Option(help="Only entries at or after this ISO 8601 time.")
        ] = None,
        out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    ) -> None:
        """Write the trail as JSON lines (seq, prev_hash, hash, ...) for a SIEM."""
        if since is not None and since.tzinfo is None:
            _fail("--since: give a UTC offset, e.g. 2026-01-01T00:00:00+00:00")
        app = make_app()
        count = 0
        stream: TextIO = private_file(out).open("w", encoding="utf-8") if out else sys.stdout
        try:
            for entry in admin.export_audit(app.ctx, AuditQuery(since=since)):
                stream.write(json.dumps(event_out(entry), sort_keys=True) + "\n")
                count += 1
        finally:
            if out:
                stream.close()
        if out:
            typer.echo(f"exported {count} entries to {out}")

    @tokens_cli.command("list")
    def tokens_list() -> None:
        """Every API token: id, user, when made, when it expires (never the token)."""
        for t in console.list_tokens(make_app().ctx, CLI_ADMIN):
            typer.echo(f"{t.id}\t{t.username}\t{iso(t.created_at)}\t{iso(t.expires_at) or 'never'}")

    @tokens_cli.command("revoke")
    def tokens_revoke(token_id: int) -> None:
        """Revoke an API token now (audited)."""
        removed = console.revoke_token(make_app().ctx, CLI_ADMIN, token_id)
        typer.echo(f"revoked token {removed.id} of {removed.username}")
