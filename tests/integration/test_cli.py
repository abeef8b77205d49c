"""The `jitadmin` command line as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from support.config import SECRET_KEY


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jitadmin", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "JITADMIN_DATA_DIR": str(tmp_path),
        "JITADMIN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "JITADMIN_SECRET_KEY": SECRET_KEY,
    }


def test_keys_generate_prints_a_long_random_key(env: dict[str, str]) -> None:
    first, second = run("keys", "generate", env=env), run("keys", "generate", env=env)
    assert first.returncode == 0
    assert len(first.stdout.strip()) >= 32
    assert first.stdout != second.stdout


def test_db_upgrade_users_add_and_audit_verify(env: dict[str, str], tmp_path: Path) -> None:
    upgraded = run("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "revision" in upgraded.stdout
    added = run("users", "add", "alice", "--role", "admin", "--json", env=env)
    assert added.returncode == 0, added.stderr
    record = json.loads(added.stdout)
    assert set(record) == {"username", "password", "token"}
    assert record["username"] == "alice"
    again = run("users", "add", "alice", "--role", "admin", "--json", env=env)
    assert again.returncode == 1
    assert again.stderr.strip() == "error: user 'alice' exists already"
    assert "Traceback" not in again.stderr
    bad_role = run("users", "add", "bob", "--role", "root", env=env)
    assert bad_role.returncode == 1 and "role: must be one of" in bad_role.stderr
    run("users", "add", "bob", "--role", "technician", env=env)

    verified = run("audit", "verify", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "audit chain intact: 2 entries" in verified.stdout

    # Tamper with the first entry: verification names it and fails.
    with sqlite3.connect(tmp_path / "cli.db") as db:
        db.execute("UPDATE grant_events SET actor = 'mallory' WHERE seq = 1")
    broken = run("audit", "verify", env=env)
    assert broken.returncode == 1
    assert "audit chain broken at entry 1" in broken.stderr


def test_deleting_the_newest_audit_entry_is_detected(env: dict[str, str], tmp_path: Path) -> None:
    run("users", "add", "alice", "--role", "admin", env=env)
    run("users", "add", "bob", "--role", "technician", env=env)
    with sqlite3.connect(tmp_path / "cli.db") as db:
        db.execute("DELETE FROM grant_events WHERE seq = 2")
    broken = run("audit", "verify", env=env)
    assert broken.returncode == 1 and "entry 2" in broken.stderr


def test_user_mistakes_print_one_line(env: dict[str, str]) -> None:
    no_key = {k: v for k, v in env.items() if k != "JITADMIN_SECRET_KEY"}
    missing = run("users", "add", "x1", "--role", "admin", env=no_key)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "JITADMIN_SECRET_KEY" in missing.stderr
    short = run(
        "users", "add", "x1", "--role", "admin", env={**env, "JITADMIN_SECRET_KEY": "short"}
    )
    assert short.returncode == 1 and "at least 32" in short.stderr
    unknown_user = run("list", "--as", "nobody", env=env)
    assert unknown_user.returncode == 1 and "no user 'nobody'" in unknown_user.stderr
    for result in (missing, short, unknown_user):
        assert "Traceback" not in result.stderr


def test_users_show_update_reset_password_and_end_sessions(env: dict[str, str]) -> None:
    assert run("users", "add", "carol", "--role", "technician", env=env).returncode == 0
    shown = run("users", "show", "carol", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["disabled"] is False
    disabled = run("users", "update", "carol", "--disable", "--role", "auditor", "--json", env=env)
    assert disabled.returncode == 0, disabled.stderr
    record = json.loads(disabled.stdout)
    assert (record["disabled"], record["role"], record["sessions_ended"]) == (True, "auditor", 0)
    bad = run("users", "update", "carol", "--role", "root", env=env)
    assert bad.returncode == 1 and "role: must be one of" in bad.stderr
    unknown = run("users", "show", "nobody", env=env)
    assert unknown.returncode == 1 and "user 'nobody' not found" in unknown.stderr
    reset = run("users", "reset-password", "carol", "--json", env=env)
    assert reset.returncode == 0, reset.stderr
    assert len(json.loads(reset.stdout)["password"]) >= 20
    ended = run("users", "end-sessions", "carol", env=env)
    assert ended.returncode == 0 and "sessions_ended: 0" in ended.stdout
    no_factor = run("users", "reset-second-factor", "carol", "--json", env=env)
    assert no_factor.returncode == 0 and json.loads(no_factor.stdout)["reset"] is False
    enabled = run("users", "update", "carol", "--enable", "--json", env=env)
    assert json.loads(enabled.stdout)["disabled"] is False
    verified = run("audit", "verify", env=env)
    assert verified.returncode == 0, verified.stderr
