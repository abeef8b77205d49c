"""Issue 12 item 8: write access to the database, without the secret key, buys nothing.

The attacker here can run any SQL but does not hold ``JITADMIN_SECRET_KEY``: they insert a
bare SHA-256 token or session hash, or point a connection's plaintext ``base_url`` at a server
of their own. Each attempt must fail, name what happened, and change nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, select, text, update

from jitadmin.core.errors import ConnectionSettingsAlteredError, UpstreamUnavailableError
from jitadmin.db.tables import ConnectionRow, PsaConfigRow
from jitadmin.entrypoints.api.app import create_app
from jitadmin.ports import AuditQuery, User
from jitadmin.services import admin, sessions
from jitadmin.wiring import App, build

from support.config import fast_settings

ROOT = User("root", "admin")
PSA_TABLE = cast(Table, PsaConfigRow.__table__)
CONNECTIONS = cast(Table, ConnectionRow.__table__)
PRIVATE_KEY = "cw-private-" + "k" * 24
PSA = {
    "kind": "connectwise", "base_url": "https://psa.msp.example/v4_6_release/apis/3.0",
    "company_id": "msp", "public_key": "pub", "private_key": PRIVATE_KEY, "client_id": "cid",
}  # fmt: skip


class Trap:
    """The attacker's server: a real HTTP listener that records every request it gets."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v4_6_release/apis/3.0"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    built = build(fast_settings(tmp_path, database_url=database_url))
    yield built
    built.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    server = Trap()
    yield server
    server.close()


def _sql(app: App, statement: str, **params: Any) -> None:
    with app.database.engine.begin() as conn:
        conn.execute(text(statement), params)


def _set_settings(app: App, table: Table, settings: dict[str, Any]) -> None:
    """The attacker's edit: plain SQL on the settings column (JSON on either database)."""
    with app.database.engine.begin() as conn:
        conn.execute(update(table).values(settings=settings))


def _user_id(app: App, username: str) -> int:
    with app.database.engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM users WHERE username = :u"), {"u": username})
        return int(found.scalar_one())


def _snapshot(app: App, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
    with app.database.engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1"))]  # noqa: S608
            for t in tables
        }


def test_a_bare_sha256_token_row_does_not_authenticate(app: App) -> None:
    boss = admin.add_user(app.ctx, ROOT, username="boss", role="admin")
    forged = "jit_" + secrets.token_urlsafe(32)
    _sql(
        app,
        "INSERT INTO api_tokens (user_id, token_hash, created_at, expires_at) "
        "VALUES (:user_id, :hash, :now, :later)",
        user_id=_user_id(app, "boss"),
        hash=hashlib.sha256(forged.encode()).hexdigest(),
        now=app.ctx.clock.now(),
        later=app.ctx.clock.now() + timedelta(days=30),
    )
    before = _snapshot(app, "grant_events", "users", "api_tokens")
    with TestClient(create_app(app)) as client:
        refused = client.get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"})
        created = client.post(
            "/api/v1/users",
            headers={"Authorization": f"Bearer {forged}"},
            json={"username": "mallory", "role": "admin"},
        )
        honest = client.get("/api/v1/users", headers={"Authorization": f"Bearer {boss.token}"})
    assert refused.status_code == 401, refused.text
    assert created.status_code == 401, created.text
    assert honest.status_code == 200, honest.text  # the real token (keyed hash) still works
    assert admin.authenticate_token(app.ctx, forged) is None
    assert _snapshot(app, "grant_events", "users", "api_tokens") == before


def test_a_bare_sha256_session_row_does_not_sign_in(app: App) -> None:
    admin.add_user(app.ctx, ROOT, username="boss", role="admin")
    cookie = secrets.token_urlsafe(32)
    now = app.ctx.clock.now()
    _sql(
        app,
        "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, "
        "expires_at) VALUES (:hash, :user_id, 'csrf', :now, :now, :later)",
        hash=hashlib.sha256(cookie.encode()).hexdigest(),
        user_id=_user_id(app, "boss"),
        now=now,
        later=now + timedelta(hours=1),
    )
    before = _snapshot(app, "grant_events", "web_sessions")
    policy = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=8))
    assert sessions.resolve(app.ctx, cookie, policy) is None
    assert _snapshot(app, "grant_events", "web_sessions") == before


def test_an_edited_psa_base_url_makes_the_secret_unusable(app: App, trap: Trap) -> None:
    admin.put_psa(app.ctx, ROOT, PSA)
    with app.database.engine.connect() as conn:
        stored = dict(conn.execute(select(PSA_TABLE.c.settings)).scalar_one())
    _set_settings(app, PSA_TABLE, {**stored, "base_url": trap.url})
    before = _snapshot(app, "grant_events", "psa_config")

    with pytest.raises(UpstreamUnavailableError) as tested:
        admin.check_psa(app.ctx, ROOT)
    assert "connection settings were altered" in str(tested.value)
    with app.ctx.uow() as uow, pytest.raises(ConnectionSettingsAlteredError) as used:
        app.ctx.tickets(uow)
    for message in (str(tested.value), str(used.value)):
        assert PRIVATE_KEY not in message and trap.url not in message
    assert trap.hits == []  # the private key never left for the attacker's server
    assert _snapshot(app, "psa_config") == {"psa_config": before["psa_config"]}
    _assert_only_the_test_was_audited(app, before, "psa.tested", trap.url)

    # The settings it was sealed with open it again: only the edit was refused.
    _set_settings(app, PSA_TABLE, stored)
    with app.ctx.uow() as uow:
        record = uow.connections.get_psa()
    assert record is not None
    assert app.ctx.open_secrets(record) == {"private_key": PRIVATE_KEY}


def test_an_edited_identity_connection_is_refused_before_any_request(app: App, trap: Trap) -> None:
    admin.create_customer(app.ctx, ROOT, slug="pedro", name="Pedro", psa_company_id="1")
    admin.put_connection(
        app.ctx, ROOT, "pedro", "m365",
        {"tenant_id": "pedro.example", "client_id": "app", "client_secret": "s" * 30},
    )  # fmt: skip
    with app.ctx.uow() as uow:
        record = uow.connections.get("pedro", "m365")
    assert record is not None
    edited = {**record.settings, "authority_url": trap.url, "graph_url": trap.url}
    _set_settings(app, CONNECTIONS, edited)
    before = _snapshot(app, "grant_events", "connections")
    with pytest.raises(UpstreamUnavailableError) as tested:
        admin.check_connection(app.ctx, ROOT, "pedro", "m365")
    assert "m365 connection of pedro: connection settings were altered" in str(tested.value)
    assert "s" * 30 not in str(tested.value)
    assert trap.hits == []
    assert _snapshot(app, "connections") == {"connections": before["connections"]}
    _assert_only_the_test_was_audited(app, before, "connection.tested", trap.url)


def _assert_only_the_test_was_audited(
    app: App, before: dict[str, list[tuple[Any, ...]]], kind: str, url: str
) -> None:
    """The only row a refused connection test writes: its own audit event (issue 12 item 7)."""
    with app.ctx.uow() as uow:
        events = sorted(uow.audit.search(AuditQuery(), 1000), key=lambda e: e.seq)
    assert len(events) == len(before["grant_events"]) + 1
    assert (events[-1].kind, events[-1].data["outcome"]) == (kind, "settings_altered")
    assert url not in repr(events[-1].data)
