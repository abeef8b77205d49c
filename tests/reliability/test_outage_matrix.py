"""The outage matrix, on SQLite and on PostgreSQL: Graph answering 503 for a long stretch at
expiry, a 429 storm with Retry-After, the domain controller unreachable at expiry, the PSA down,
and the PostgreSQL server restarted mid-run. In each: nothing is lost, the trouble shows (state
``revoke_failed``, ``last_error``, the metrics) while it lasts, and revocation completes, once,
after recovery.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.seed import CUSTOMERS

from support.ad import SambaDc, unique_requester
from support.faults import graph_admin, psa_admin, set_faults
from support.postgres import fresh_postgres_database
from support.system import System, outbox_drained, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]
TICKET = PEDRO.open_ticket_ids[0]


# --- helpers --------------------------------------------------------------------------------


def metric(system: System, name: str) -> float:
    text = system.metrics()
    found = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, f"{name} missing from /metrics"
    return float(found.group(1))


def technician(system: System) -> httpx.Client:
    with system.client("admin") as admin:
        response = admin.post(
            "/users", json={"username": unique_requester("outage"), "role": "technician"}
        )
    assert response.status_code == 201, response.text
    return httpx.Client(
        base_url=f"{system.url}/api/v1",
        headers={"Authorization": f"Bearer {response.json()['token']}"},
        timeout=30,
    )


def request(system: System, identity_provider: str = "m365") -> dict[str, Any]:
    with technician(system) as api:
        response = api.post("/grants", json={
            "customer": "pedroaviary", "identity_provider": identity_provider,
            "ticket_id": TICKET, "duration_minutes": 30,
            "reason": "Outage matrix: renew the certificate",
        })  # fmt: skip
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def revoke_now(system: System, grant_id: str) -> None:
    with system.client("admin") as api:
        assert api.post(f"/grants/{grant_id}/revoke").status_code == 202


def advance_until(system: System, clock: ManualClock, grant_id: str, state: str) -> dict[str, Any]:
    """Simulated minutes pass until the grant reaches ``state``; never "revoked" early."""

    def step() -> dict[str, Any] | None:
        grant = system.grant(grant_id)
        if grant["state"] == state:
            return grant
        assert grant["state"] != "revoked", "marked revoked while the target could not confirm"
        clock.advance(timedelta(minutes=1))
        return None

    return wait_for(step, timeout=60, what=f"grant {grant_id} to reach {state}")


def markers(system: System, grant_id: str) -> Counter[str]:
    return Counter(
        event
        for note in system.ticket_notes(TICKET)
        for event in ("granted", "revoked", "revoke_failed", "failed")
        if f"jitadmin:{grant_id}:{event}" in note
    )


def served(system: System, status: int) -> int:
    """How many Graph requests the emulator answered with ``status``."""
    return sum(1 for e in system.world.graph.faults.journal_dicts() if e["status"] == status)


def assert_complete(system: System, grant_id: str, expected: dict[str, int]) -> None:
    """Revoked once, each note on the ticket exactly once, the audit chain whole."""
    wait_for(lambda: outbox_drained(system, grant_id), timeout=60, what="every note delivered")
    assert markers(system, grant_id) == expected
    with system.app.ctx.uow() as uow:
        checked, bad = uow.audit.verify()
        kinds = Counter(e.kind for e in uow.audit.entries(grant_id=grant_id, limit=10_000))
    assert bad is None and checked > 0
    for transition in ("grant.requested", "grant.active", "grant.revoked"):
        assert kinds[transition] == 1, (transition, kinds)
    assert kinds["account.verified_revoked"] >= 1


@pytest.fixture
def clocked(tmp_path: Path, clock: ManualClock, database_url: str) -> Iterator[System]:
    running = start_system(tmp_path, clock=clock, database_url=database_url)
    yield running
    stop_system(running)


@pytest.fixture
def realtime(tmp_path: Path, database_url: str) -> Iterator[System]:
    running = start_system(tmp_path, database_url=database_url)
    yield running
    stop_system(running)


# --- Graph ------------------------------------------------------------------------------------


def test_graph_503_for_a_long_stretch_at_expiry(clocked: System, clock: ManualClock) -> None:
    system = clocked
    grant = request(system)
    system.wait_state(grant["id"], "active")
    wait_for(lambda: outbox_drained(system, grant["id"]), what="the grant note")
    assert metric(system, "jitadmin_revoke_failed_grants") == 0

    set_faults(graph_admin(system), error_status=503)
    clock.advance(timedelta(minutes=31))
    failed = advance_until(system, clock, grant["id"], "revoke_failed")
    assert "503" in failed["last_error"] or "unavailable" in failed["last_error"].lower()
    assert metric(system, "jitadmin_revoke_failed_grants") == 1
    wait_for(lambda: markers(system, grant["id"])["revoke_failed"], what="the alarm note")
    # A long stretch: many more attempts, all refused, the grant stays loud and unrevoked.
    for _ in range(2):
        refused = served(system, 503)
        clock.advance(timedelta(minutes=5))
        wait_for(
            lambda n=refused: served(system, 503) > n,  # type: ignore[misc]
            what="another refused attempt",
        )
        assert system.grant(grant["id"])["state"] == "revoke_failed"
    assert metric(system, "jitadmin_revoke_failed_grants") == 1

    set_faults(graph_admin(system))
    advance_until(system, clock, grant["id"], "revoked")
    assert metric(system, "jitadmin_revoke_failed_grants") == 0
    assert_complete(system, grant["id"], {"granted": 1, "revoke_failed": 1, "revoked": 1})


def test_429_storm_is_waited_out_and_retry_after_is_honoured(realtime: System) -> None:
    system = realtime
    grant = request(system)
    active = system.wait_state(grant["id"], "active")
    assert active["username"]
    set_faults(graph_admin(system), error_status=429, retry_after_s=1, error_count=4)
    system.world.graph.faults.clear_journal()
    revoke_now(system, grant["id"])
    system.wait_state(grant["id"], "revoked", timeout=60)

    journal = system.world.graph.faults.journal_dicts()
    throttled = [e for e in journal if e["status"] == 429]
    assert len(throttled) == 4, [(e["method"], e["path"], e["status"]) for e in journal]
    # No request was sent before the Retry-After of the 429 before it had passed (the entries'
    # own timestamps: a 429 is answered after its request started, so this is conservative).
    for refused in throttled:
        refused_at = datetime.fromisoformat(refused["started_at"])
        for later in journal:
            if later["seq"] > refused["seq"]:
                started = datetime.fromisoformat(later["started_at"])
                assert started - refused_at >= timedelta(seconds=1), (refused, later)
    assert_complete(system, grant["id"], {"granted": 1, "revoked": 1})


# --- the domain controller ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite: tests/reliability/test_ad_outage.py
def test_dc_unreachable_at_expiry(tmp_path: Path, database_url: str, samba_dc: SambaDc) -> None:
    # The DC judges accountExpires by the real clock, so simulated time starts at the real now.
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    system = start_system(tmp_path, clock=clock, database_url=database_url)
    try:
        with system.client("admin") as admin:
            admin.put(
                "/customers/pedroaviary/connections/ad", json=samba_dc.api_settings()
            ).raise_for_status()
        grant = request(system, "ad")
        system.wait_state(grant["id"], "active")
        wait_for(lambda: outbox_drained(system, grant["id"]), what="the grant note")
        samba_dc.stop()
        try:
            clock.advance(timedelta(minutes=31))
            failed = advance_until(system, clock, grant["id"], "revoke_failed")
            assert "unreachable" in failed["last_error"]
            assert metric(system, "jitadmin_revoke_failed_grants") == 1
            wait_for(lambda: markers(system, grant["id"])["revoke_failed"], what="alarm note")
        finally:
            samba_dc.start()
        advance_until(system, clock, grant["id"], "revoked")
        assert metric(system, "jitadmin_revoke_failed_grants") == 0
        with samba_dc.admin() as admin:
            user = admin.find(grant["username"])
        assert user is not None and not user.enabled and user.member_of == []
        assert_complete(system, grant["id"], {"granted": 1, "revoke_failed": 1, "revoked": 1})
    finally:
        stop_system(system)


# --- the PSA ------------------------------------------------------------------------------


def test_psa_down_at_grant_and_expiry_loses_no_note(clocked: System, clock: ManualClock) -> None:
    system = clocked
    # A request is checked against its ticket in the PSA, so only the note calls fail: the
    # ticket check still answers, every note delivery gets a 503.
    set_faults(psa_admin(system), error_status=503, match="/notes")
    grant = request(system)
    system.wait_state(grant["id"], "active")
    clock.advance(timedelta(minutes=31))
    system.wait_state(grant["id"], "revoked")  # revocation never waits on the PSA
    wait_for(lambda: metric(system, "jitadmin_outbox_pending") == 2, what="both notes pending")
    with system.app.ctx.uow() as uow:
        waiting = uow.outbox.for_grant(grant["id"])
    assert sorted(m.marker.rsplit(":", 1)[1] for m in waiting) == ["granted", "revoked"]
    assert all(m.state == "pending" for m in waiting)
    assert any(m.last_error for m in waiting)  # tried, and the failure is recorded

    set_faults(psa_admin(system))

    def delivered() -> bool:
        if metric(system, "jitadmin_outbox_pending") == 0:
            return True
        clock.advance(timedelta(minutes=1))  # the notes' next retry comes due
        return False

    wait_for(delivered, what="the notes delivered")
    clock.advance(timedelta(minutes=5))
    assert_complete(system, grant["id"], {"granted": 1, "revoked": 1})


# --- the PostgreSQL server itself ---------------------------------------------------------


@dataclass
class PrivateServer:
    """A PostgreSQL server of this test's own (initdb in tmp), so restarting it disturbs no
    other test and no other run."""

    bin_dir: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if shutil.which("runuser") and _is_root():
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{args[0]}: {done.stdout}{done.stderr}"

    def init(self) -> None:
        self.data.mkdir(parents=True)
        if _is_root():
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.data.parent, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"
        )

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.data / "log"),
            "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def _is_root() -> bool:
    return os.geteuid() == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not bins:
        pytest.fail("no PostgreSQL binaries: run `bash scripts/postgres.sh start` once")
    # Not under pytest's tmp (mode 700, root's): the server runs as the postgres user.
    base = Path(tempfile.mkdtemp(prefix="jitadmin-pg-"))
    server = PrivateServer(bins[-1], base / "data", _free_port())
    try:
        server.init()
        server.start()
        yield server
        server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_restarted_mid_run(
    tmp_path: Path, backend: str, private_postgres: PrivateServer
) -> None:
    assert backend == "postgresql"
    with fresh_postgres_database(private_postgres.url) as url:
        system = start_system(tmp_path, database_url=url)
        try:
            # Grants in the middle of provisioning (Graph slow on the role assignment) when the
            # database goes away.
            set_faults(graph_admin(system), latency_ms=1500, match="POST /v1.0/roleManagement")
            grants = [request(system) for _ in range(3)]
            wait_for(
                lambda: [
                    e
                    for e in system.world.graph.faults.journal_dicts()
                    if "roleAssignments" in e["path"] and e["method"] == "POST"
                ],
                what="a role assignment in flight",
            )
            private_postgres.stop()
            # While it is down the service says so instead of pretending.
            assert httpx.get(f"{system.url}/readyz", timeout=30).status_code == 503
            private_postgres.start()
            set_faults(graph_admin(system))
            for grant in grants:
                system.wait_state(grant["id"], "active", timeout=60)

            # And again while revocations are due.
            set_faults(graph_admin(system), latency_ms=1500, match="DELETE /v1.0/users/")
            for grant in grants:
                revoke_now(system, grant["id"])
            wait_for(
                lambda: [
                    e
                    for e in system.world.graph.faults.journal_dicts()
                    if e["method"] == "DELETE" and "/v1.0/users/" in e["path"]
                ],
                what="a deletion in flight",
            )
            private_postgres.stop()
            private_postgres.start()
            set_faults(graph_admin(system))
            for grant in grants:
                system.wait_state(grant["id"], "revoked", timeout=60)
            for grant in grants:
                assert_complete(system, grant["id"], {"granted": 1, "revoked": 1})
            assert system.worker is not None and system.worker.in_flight == 0
        finally:
            stop_system(system)
