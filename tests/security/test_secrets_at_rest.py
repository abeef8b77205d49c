"""After a full grant-and-revoke run, no plaintext secret is in the database files or the log.

The run logs at DEBUG (every library too: httpx, httpcore, msal, sqlalchemy's engine echo is
off by default) through the same redacting handlers the CLI installs, into a file; then the
SQLite database, its -wal / -shm / -journal files and the log are searched byte for byte for the
one-time password, every connection credential, the users' API tokens and passwords.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jitadmin.entrypoints import logging_redaction

from support.certificates import make_certificate
from support.system import start_system, stop_system
from support.waiting import wait_for


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    # install() also sets the HTTP client loggers; later tests must not inherit DEBUG.
    noisy = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    saved_noisy = [logger.level for logger in noisy]
    log_file = tmp_path / "logs" / "jitadmin.log"
    log_file.parent.mkdir()
    handlers = logging_redaction.install(logging.DEBUG, log_file)
    yield log_file
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)
    for logger, level in zip(noisy, saved_noisy, strict=True):
        logger.setLevel(level)


def _files(data_dir: Path, log_file: Path) -> list[Path]:
    found = [p for p in data_dir.iterdir() if p.name.startswith("jitadmin.db")]
    assert any(p.name == "jitadmin.db" for p in found)
    return [*found, log_file]


def _scan(files: list[Path], secrets: dict[str, str]) -> list[str]:
    leaks = []
    for path in files:
        content = path.read_bytes()
        for name, value in secrets.items():
            for form in {value.encode(), value.encode("utf-16-le")}:
                if form in content:
                    leaks.append(f"{name} in {path.name}")
    return leaks


def test_no_plaintext_secret_after_grant_and_revoke(tmp_path: Path, debug_log: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    system = start_system(data_dir)
    try:
        customer = system.world.customers[0]
        ticket = str(customer.open_ticket_ids[0])
        with system.client("technician") as tech:
            made = tech.post(
                "/grants",
                json={"customer": customer.slug, "identity_provider": "m365", "ticket_id": ticket,
                      "duration_minutes": 15, "reason": "Secrets-at-rest scan"},
            )  # fmt: skip
            assert made.status_code == 202, made.text
            grant = made.json()
        system.wait_state(grant["id"], "active")
        with system.client("admin") as admin_api:
            shown = admin_api.post(f"/grants/{grant['id']}/password", json={"reason": "scan"})
            assert shown.status_code == 200 and shown.json()["password"] == grant["password"]
            assert admin_api.post(f"/grants/{grant['id']}/revoke").status_code == 202
        system.wait_state(grant["id"], "revoked")
        wait_for(lambda: len(system.ticket_notes(ticket)) >= 2, what="both ticket notes")
        # The API answers with a sign-in too, so the web path's secrets are in the run.
        httpx.get(f"{system.url}/signin", timeout=10)

        secrets = {"one-time password": grant["password"]}
        for c in system.world.customers:
            secrets[f"graph client secret ({c.slug})"] = system.world.graph_settings(c)[
                "client_secret"
            ]
        psa = system.world.psa_settings()
        secrets["PSA private key"] = psa["private_key"]
        for role, user in system.users.items():
            secrets[f"{role} API token"] = user["token"]
            secrets[f"{role} password"] = user["password"]
        assert all(len(v) >= 8 for v in secrets.values()), "a secret too short to search for"

        files = _files(data_dir, debug_log)
        assert _scan(files, secrets) == []
    finally:
        stop_system(system)
    # After shutdown (WAL checkpointed into the main file) once more.
    files = _files(data_dir, debug_log)
    assert _scan(files, secrets) == []
    log_text = debug_log.read_text()
    assert "DEBUG" in log_text, "the run did not log at DEBUG; the scan would prove little"
    assert log_text.count("\n") > 50


def test_no_plaintext_private_key_with_a_certificate_credential(
    tmp_path: Path, debug_log: Path
) -> None:
    """The MSP app with a certificate: after a grant and revoke through it, neither the private
    key nor a client assertion MSAL signed with it is in the database files or the log."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    system = start_system(data_dir)
    cert = make_certificate("secrets at rest")
    northwind = system.world.customers[1]
    try:
        graph = system.world.graph_settings(northwind)
        with httpx.Client(base_url=f"{system.world.url}/graph", timeout=30) as emulator:
            emulator.post("/_admin/app-registration/certificates",
                          json={"pem": cert.certificate_pem}).raise_for_status()  # fmt: skip
        with system.client("admin") as admin_api:
            saved = admin_api.put("/m365-app", json={
                "client_id": graph["client_id"], "certificate_pem": cert.certificate_pem,
                "private_key_pem": cert.private_key_pem, "authority_url": graph["authority_url"],
                "graph_url": graph["base_url"],
            })  # fmt: skip
            assert saved.status_code == 200, saved.text
            put = admin_api.put(f"/customers/{northwind.slug}/connections/m365",
                                json={"tenant_id": northwind.tenant_id})  # fmt: skip
            assert put.status_code == 200, put.text
        with system.client("technician") as tech:
            made = tech.post("/grants", json={
                "customer": northwind.slug, "identity_provider": "m365",
                "ticket_id": str(northwind.open_ticket_ids[0]), "duration_minutes": 15,
                "reason": "Certificate secrets-at-rest scan",
            })  # fmt: skip
            assert made.status_code == 202, made.text
        system.wait_state(made.json()["id"], "active")
        with system.client("admin") as admin_api:
            assert admin_api.post(f"/grants/{made.json()['id']}/revoke").status_code == 202
        system.wait_state(made.json()["id"], "revoked")
        assertions = [
            e for e in system.world.graph.faults.journal_dicts()
            if e["path"].endswith("/oauth2/v2.0/token") and e["body"]
            and e["body"].get("client_assertion")
        ]  # fmt: skip
        assert assertions, "the run authenticated with the certificate"
    finally:
        stop_system(system)
    key_lines = [line for line in cert.private_key_pem.splitlines() if not line.startswith("-")]
    secrets = {f"private key line {i}": line for i, line in enumerate(key_lines[:3])}
    files = _files(data_dir, debug_log)
    assert _scan(files, secrets) == []
    # A signed assertion is a credential for its ten minutes: never logged, in any quoting.
    assert re.search(r"client_assertion\W{1,6}ey", debug_log.read_text()) is None
