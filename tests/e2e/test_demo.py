"""`jitadmin demo` as a newcomer runs it: one command, then a grant through its API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from jitadmin.emulators.runner import free_port

from support.system import demo_ready
from support.waiting import wait_for


def test_demo_runs_seeds_and_grants(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JITADMIN_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jitadmin",
            "demo",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        demo = wait_for(
            lambda: demo_ready(url, tmp_path / "demo.json"), timeout=60, what="the demo to start"
        )
        assert demo["url"] == url
        assert demo["database_url"] == f"sqlite:///{(tmp_path / 'jitadmin.db').resolve()}"
        assert len(demo["secret_key"]) >= 32
        assert set(demo["users"]) == {"admin", "technician"}
        for user in demo["users"].values():
            assert set(user) >= {"username", "password", "token"}
        # The admin signs in with a second factor (JITADMIN_TOTP_REQUIRED_ROLES: admin).
        assert len(demo["users"]["admin"]["totp_secret"]) >= 32
        assert "totp_secret" not in demo["users"]["technician"]
        graph = demo["emulators"]["graph"]
        assert set(graph) >= {
            "base_url",
            "authority_url",
            "token_url",
            "admin_url",
            "tenant_id",
            "client_id",
            "client_secret",
            "domain",
        }
        assert graph["domain"] == "pedroaviary.onmicrosoft.com"
        assert demo["emulators"]["psa"]["kind"] == "connectwise"
        customers = {c["slug"]: c for c in demo["emulators"]["customers"]}
        assert customers["pedroaviary"]["name"] == "Pedro Aviary"
        assert len(customers["pedroaviary"]["open_ticket_ids"]) >= 3
        assert len(customers["pedroaviary"]["closed_ticket_ids"]) >= 1
        assert len(customers) >= 2

        headers = {"Authorization": f"Bearer {demo['users']['technician']['token']}"}
        with httpx.Client(base_url=f"{url}/api/v1", headers=headers, timeout=30) as api:
            tickets = api.get("/customers/pedroaviary/tickets").json()["items"]
            assert {t["id"] for t in tickets} == set(customers["pedroaviary"]["open_ticket_ids"])
            created = api.post(
                "/grants",
                json={
                    "customer": "pedroaviary",
                    "identity_provider": "m365",
                    "ticket_id": tickets[0]["id"],
                    "duration_minutes": 5,
                    "reason": "Demo walk-through for the README",
                },
            )
            assert created.status_code == 202, created.text
            grant_id = created.json()["id"]
            wait_for(
                lambda: api.get(f"/grants/{grant_id}").json()["state"] == "active", what="active"
            )
            api.post(f"/grants/{grant_id}/revoke").raise_for_status()
            wait_for(
                lambda: api.get(f"/grants/{grant_id}").json()["state"] == "revoked", what="revoked"
            )
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert f"jitadmin demo at {url}" in output
    assert "technician: example.user@msp.example" in output
    assert f"TOTP secret {demo['users']['admin']['totp_secret']}" in output
    assert (tmp_path / "demo.json").stat().st_mode & 0o777 == 0o600
