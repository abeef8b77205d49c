"""`jitadmin keys rotate`: every sealed value ends under the new key, readable without the old."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from jitadmin.adapters.secretbox import AesGcmSecretBox
from jitadmin.ports import User
from jitadmin.services import grants, reveals, second_factor
from jitadmin.wiring import build

from support.config import SECRET_KEY, fast_settings
from support.system import start_system, stop_system

NEW_KEY = "the-new-secret-key-" + "n" * 32
SEALED_QUERIES = (
    "SELECT secret_sealed FROM connections",
    "SELECT secret_sealed FROM psa_config",
    "SELECT password_sealed FROM grants WHERE password_sealed IS NOT NULL",
    "SELECT totp_secret_sealed FROM users WHERE totp_secret_sealed IS NOT NULL",
)


def _sealed(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for q in SEALED_QUERIES for row in connection.execute(q)]


def _rotate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jitadmin", "keys", "rotate", "--batch", "2"],
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_rotate_reseals_everything_and_is_idempotent(tmp_path: Path) -> None:
    system = start_system(tmp_path, with_worker=False)
    try:
        customer = system.world.customers[0]
        made = [
            grants.request_grant(
                system.app.ctx, User(f"t{i}@msp.example", "technician"), customer=customer.slug,
                identity_provider="m365", ticket_id=str(customer.open_ticket_ids[0]),
                duration_minutes=10, reason="Rotation test",
            )
            for i in range(3)
        ]  # fmt: skip
        totp_secret = second_factor.enrol(system.app.ctx, "admin").secret
    finally:
        stop_system(system)
    db = tmp_path / "jitadmin.db"
    old_id = AesGcmSecretBox(SECRET_KEY).seal("x", "c").split(".")[1]
    new_id = AesGcmSecretBox(NEW_KEY).seal("x", "c").split(".")[1]
    before = _sealed(db)
    # Two M365 connections, the PSA, three passwords, the admin's TOTP secret.
    assert len(before) == 2 + 1 + 3 + 1
    assert all(v.split(".")[1] == old_id for v in before)

    env = {
        **os.environ,
        "JITADMIN_DATABASE_URL": f"sqlite:///{db}",
        "JITADMIN_SECRET_KEY": NEW_KEY,
        "JITADMIN_PREVIOUS_SECRET_KEYS": json.dumps([SECRET_KEY]),
    }
    first = _rotate(env)
    assert first.returncode == 0, first.stderr
    assert "connection: 2 sealed, 2 re-sealed" in first.stdout
    assert "psa: 1 sealed, 1 re-sealed" in first.stdout
    assert "grant_password: 3 sealed, 3 re-sealed" in first.stdout
    assert "totp_secret: 1 sealed, 1 re-sealed" in first.stdout
    after = _sealed(db)
    assert all(v.split(".")[1] == new_id for v in after)
    again = _rotate(env)
    assert again.returncode == 0 and "re-sealed 0;" in again.stdout

    # The new key alone reads everything; the old key alone reads nothing.
    app = build(fast_settings(tmp_path, secret_key=SecretStr(NEW_KEY)), upgrade=False)
    try:
        admin_user = User("admin", "admin")
        for grant in made:
            shown = reveals.reveal_password(app.ctx, admin_user, grant.grant.id, "rotation check")
            assert shown == grant.password
        with app.ctx.uow() as uow:
            record = uow.connections.get(customer.slug, "m365")
            assert record is not None
            assert app.ctx.open_secrets(record)["client_secret"]
            psa = uow.connections.get_psa()
            assert psa is not None and app.ctx.open_secrets(psa)
            factor = uow.second_factors.get("admin")
            assert factor is not None
        opened = app.ctx.box.open(factor.secret_sealed, second_factor.secret_context("admin"))
        assert opened == totp_secret
    finally:
        app.close()
    old_only = _rotate(
        {**env, "JITADMIN_SECRET_KEY": SECRET_KEY, "JITADMIN_PREVIOUS_SECRET_KEYS": "[]"}
    )
    assert old_only.returncode == 1 and "unknown key" in old_only.stderr
    assert "Traceback" not in old_only.stderr
