"""The audit trail as evidence: tampering is found, exports are complete, reads are filtered."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jitadmin.entrypoints.api.app import create_app
from jitadmin.ports import User
from jitadmin.services import admin
from jitadmin.wiring import App, build

from support.config import SECRET_KEY, fast_settings

ROOT = User("root", "admin")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jitadmin", *args],
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[tuple[App, dict[str, str], Path]]:
    """A database with a six-entry chain: three customers and three users."""
    app = build(fast_settings(tmp_path))
    for slug in ("alpha", "bravo", "charlie"):
        admin.create_customer(app.ctx, ROOT, slug=slug, name=slug.title(), psa_company_id="1")
    for name, role in (("ann", "admin"), ("tom", "technician"), ("aud", "auditor")):
        admin.add_user(app.ctx, ROOT, username=name, role=role, customers=None)
    env = {
        **os.environ,
        "JITADMIN_DATA_DIR": str(tmp_path),
        "JITADMIN_DATABASE_URL": f"sqlite:///{tmp_path / 'jitadmin.db'}",
        "JITADMIN_SECRET_KEY": SECRET_KEY,
    }
    yield app, env, tmp_path / "jitadmin.db"
    app.close()


def _tamper(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as connection:
        for statement in statements:
            connection.execute(statement)


def _verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run("audit", "verify", env=env)


def test_intact_chain_verifies(trail: tuple[App, dict[str, str], Path]) -> None:
    _, env, _ = trail
    result = _verify(env)
    assert result.returncode == 0, result.stderr
    assert "audit chain intact: 6 entries" in result.stdout


@pytest.mark.parametrize(
    ("case", "statements", "first_bad"),
    [
        ("edited data", ['UPDATE grant_events SET data = \'{"name": "Evil"}\' WHERE seq = 3'], 3),
        ("edited actor", ["UPDATE grant_events SET actor = 'mallory' WHERE seq = 5"], 5),
        ("edited time", ["UPDATE grant_events SET at = '2020-01-01 00:00:00' WHERE seq = 2"], 2),
        ("deleted middle", ["DELETE FROM grant_events WHERE seq = 3"], 3),
        ("deleted tail", ["DELETE FROM grant_events WHERE seq = 6"], 6),
        ("deleted tail two", ["DELETE FROM grant_events WHERE seq >= 5"], 5),
        (
            "swapped 3 and 4",
            [
                "UPDATE grant_events SET seq = -3 WHERE seq = 3",
                "UPDATE grant_events SET seq = 3 WHERE seq = 4",
                "UPDATE grant_events SET seq = 4 WHERE seq = -3",
            ],
            3,
        ),
    ],
)
def test_tampering_is_named(
    trail: tuple[App, dict[str, str], Path], case: str, statements: list[str], first_bad: int
) -> None:
    _, env, db = trail
    _tamper(db, *statements)
    result = _verify(env)
    assert result.returncode == 1, f"{case}: {result.stdout}"
    assert f"audit chain broken at entry {first_bad} " in result.stderr, result.stderr


def test_export_writes_json_lines_that_rebuild_the_chain(
    trail: tuple[App, dict[str, str], Path], tmp_path: Path
) -> None:
    _, env, _ = trail
    out = tmp_path / "audit.jsonl"
    result = run("audit", "export", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(lines))
    assert {"kind", "actor", "at", "customer", "data", "grant_id"} <= set(lines[0])
    # To stdout, and only from a point in time on.
    later = run("audit", "export", "--since", "2999-01-01T00:00:00+00:00", env=env)
    assert later.returncode == 0 and later.stdout == ""
    naive = run("audit", "export", "--since", "2020-01-01T00:00:00", env=env)
    assert naive.returncode == 1 and "UTC offset" in naive.stderr


def test_get_audit_filters_and_validates(trail: tuple[App, dict[str, str], Path]) -> None:
    app, _, _ = trail
    token = admin.add_user(app.ctx, ROOT, username="boss", role="admin").token
    restricted = admin.add_user(
        app.ctx, ROOT, username="aud2", role="auditor", customers=["alpha"]
    ).token
    tech = admin.add_user(app.ctx, ROOT, username="tech2", role="technician").token
    with TestClient(create_app(app)) as client:

        def get(params: dict[str, str], who: str = token) -> list[dict[str, object]]:
            response = client.get(
                "/api/v1/audit", params=params, headers={"Authorization": f"Bearer {who}"}
            )
            assert response.status_code == 200, response.text
            items: list[dict[str, object]] = response.json()["items"]
            return items

        assert {e["customer"] for e in get({"customer": "bravo"})} == {"bravo"}
        assert {e["actor"] for e in get({"actor": "root"})} == {"root"}
        assert get({"grant_id": "nope"}) == []
        everything = get({})
        assert len(everything) >= 9
        middle = str(everything[3]["at"])
        assert all(str(e["at"]) >= middle for e in get({"since": middle}))
        assert all(str(e["at"]) < middle for e in get({"until": middle}))
        # Someone restricted to some customers sees only those customers' events.
        assert {e["customer"] for e in get({}, restricted)} == {"alpha"}
        for params, field in (
            ({"since": "yesterday"}, "since"),
            ({"since": "2026-01-01T00:00:00"}, "since"),
            ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
            ({"limit": "0"}, "limit"),
            ({"limit": "100000"}, "limit"),
        ):
            bad = client.get(
                "/api/v1/audit", params=params, headers={"Authorization": f"Bearer {token}"}
            )
            assert bad.status_code == 422, (params, bad.text)
            assert bad.headers["content-type"] == "application/problem+json"
            assert bad.json()["errors"][0]["field"] == field
        denied = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {tech}"})
        assert denied.status_code == 403


def test_cli_lists_and_revokes_api_tokens(trail: tuple[App, dict[str, str], Path]) -> None:
    app, env, _ = trail
    token = admin.add_user(app.ctx, ROOT, username="tokenuser", role="technician").token
    assert admin.authenticate_token(app.ctx, token) is not None
    listed = run("tokens", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "jit_" not in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if "\ttokenuser\t" in line)
    token_id, _, _, expires = row.split("\t")
    assert expires != "never"
    revoked = run("tokens", "revoke", token_id, env=env)
    assert revoked.returncode == 0 and "tokenuser" in revoked.stdout
    assert admin.authenticate_token(app.ctx, token) is None
    assert run("audit", "verify", env=env).returncode == 0
    missing = run("tokens", "revoke", "999999", env=env)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
