"""The crash matrix: a real worker process is SIGKILLed right after every progress step of
provisioning and of revocation, for Microsoft 365 (Graph emulator) and for on-prem AD (the real
Samba DC), on SQLite and on PostgreSQL.

Each crash is a real SIGKILL of a real ``jitadmin worker`` process
(tests/support/crash_worker.py kills itself right after the chosen step's transaction has
committed). A fresh worker process then takes the grant over once the dead one's lease has run
out. In the end every grant must be revoked and verified on the target, its ticket must hold
exactly one note per event, and the audit chain must verify and hold every transition once and
every step.

One grant per step boundary; the steps run one after another through a chain of workers, and
each worker first finishes what its predecessor left behind before the next crash is armed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from jitadmin.db.tables import GrantRow
from jitadmin.emulators.seed import CUSTOMERS

from support.ad import SambaDc, unique_requester
from support.config import SECRET_KEY
from support.system import System, start_system, stop_system
from support.waiting import wait_for
from support.worker_process import WorkerProcess

PEDRO = CUSTOMERS[0]

M365_PROVISION = ("user_created", "role_assigned", "verified_granted")
M365_REVOKE = (
    "role_removed", "user_disabled", "sessions_revoked", "user_deleted", "user_purged",
    "verified_revoked",
)  # fmt: skip
AD_PROVISION = (
    "account_created", "password_set", "expiry_set", "enabled", "group_added", "verified_granted",
)  # fmt: skip
AD_REVOKE = (
    "group_removed",
    "disabled",
    "password_reset",
    "admin_count_cleared",
    "verified_revoked",
)


@dataclass
class Tech:
    username: str
    token: str


@dataclass
class Matrix:
    system: System
    logs: Path
    identity_provider: str
    techs: list[Tech]
    grants: list[dict[str, Any]]
    workers: list[WorkerProcess]

    def worker(
        self, crash_after: tuple[str, str] | None = None, *, gated: bool = False
    ) -> WorkerProcess:
        name = f"worker-{len(self.workers)}-{crash_after[1] if crash_after else 'plain'}.log"
        started = WorkerProcess(self.system, self.logs / name, crash_after=crash_after, gated=gated)
        self.workers.append(started)
        return started

    def tech_client(self, n: int) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.system.url}/api/v1",
            headers={"Authorization": f"Bearer {self.techs[n].token}"},
            timeout=30,
        )

    def request(self, n: int) -> dict[str, Any]:
        with self.tech_client(n) as api:
            response = api.post("/grants", json={
                "customer": "pedroaviary", "identity_provider": self.identity_provider,
                "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
                "reason": f"Crash matrix #{n}: rotate the backup credentials",
            })  # fmt: skip
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    def revoke(self, n: int) -> None:
        with self.tech_client(n) as api:
            response = api.post(f"/grants/{self.grants[n]['id']}/revoke")
        assert response.status_code == 202, response.text

    def stored(self, grant_id: str) -> Any:
        with self.system.app.ctx.uow() as uow:
            return uow.grants.get(grant_id)

    def claimed_by(self, grant_id: str) -> str | None:
        with self.system.app.database.engine.connect() as conn:
            return conn.scalar(select(GrantRow.claimed_by).where(GrantRow.id == grant_id))

    def settled(self, grant_id: str, state: str) -> bool:
        with self.system.app.ctx.uow() as uow:
            grant = uow.grants.get(grant_id)
            messages = uow.outbox.for_grant(grant_id)
        return (
            grant is not None
            and grant.state.value == state
            and bool(messages)
            and all(m.state == "sent" for m in messages)
            and self.claimed_by(grant_id) is None
        )

    def settle(self, targets: dict[str, str]) -> None:
        for grant_id, state in targets.items():
            wait_for(
                lambda g=grant_id, s=state: self.settled(g, s),  # type: ignore[misc]
                timeout=60,
                what=f"grant {grant_id} to settle in {state} with its notes sent",
            )


def add_techs(system: System, count: int) -> list[Tech]:
    techs = []
    with system.client("admin") as admin:
        for _ in range(count):
            name = unique_requester("crash")
            response = admin.post("/users", json={"username": name, "role": "technician"})
            assert response.status_code == 201, response.text
            techs.append(Tech(name, response.json()["token"]))
    return techs


def run_matrix(
    system: System,
    logs: Path,
    identity_provider: str,
    provision_steps: tuple[str, ...],
    revoke_steps: tuple[str, ...],
    before_revoking: Callable[[list[dict[str, Any]]], None] = lambda _grants: None,
) -> Matrix:
    """Crash after each step of provisioning, then after each step of revocation.

    One worker process per phase. The next phase's worker is started (gated) while the current
    one runs, so its start-up overlaps; it begins work only once its predecessor is gone, so
    there is never more than one worker at a time (SQLite's rule).
    """
    count = max(len(provision_steps), len(revoke_steps))
    matrix = Matrix(system, logs, identity_provider, add_techs(system, count), [], [])
    phases: list[tuple[str, int, str | None]] = [
        ("request", n, provision_steps[n] if n < len(provision_steps) else None)
        for n in range(count)
    ] + [("revoke", n, revoke_steps[n] if n < len(revoke_steps) else None) for n in range(count)]

    def prepare(index: int) -> WorkerProcess:
        _action, n, step = phases[index]
        return matrix.worker((matrix.techs[n].username, step) if step else None, gated=True)

    settled: dict[str, str] = {}
    try:
        _run_phases(matrix, phases, prepare, settled, before_revoking)
    finally:
        for started in matrix.workers:
            started.stop()
    return matrix


def _run_phases(
    matrix: Matrix,
    phases: list[tuple[str, int, str | None]],
    prepare: Callable[[int], WorkerProcess],
    settled: dict[str, str],
    before_revoking: Callable[[list[dict[str, Any]]], None],
) -> None:
    worker = prepare(0)
    for index, (action, n, step) in enumerate(phases):
        worker.open_gate()
        # The new worker first finishes whatever the last one was killed in the middle of.
        matrix.settle(settled)
        if action == "request":
            matrix.grants.append(matrix.request(n))
            target = "active"
        else:
            if n == 0:
                before_revoking(matrix.grants)
            matrix.revoke(n)
            target = "revoked"
        grant_id = matrix.grants[n]["id"]
        following_step = phases[index + 1][2] if index + 1 < len(phases) else None
        if step is None and following_step is None:
            # No crash here nor next: the same plain worker carries on.
            matrix.settle({grant_id: target})
            settled[grant_id] = target
            continue
        last = index + 1 == len(phases)
        following = matrix.worker(gated=True) if last else prepare(index + 1)
        if step is not None:
            worker.wait_killed()
            stored = matrix.stored(grant_id)
            # Killed right after this step: it is the last one done, and the grant is mid-way.
            assert stored.steps[-1] == step, (step, stored.steps)
            assert stored.state.value == ("provisioning" if action == "request" else "revoking")
            assert matrix.claimed_by(grant_id) is not None  # the dead worker's lease, to lapse
        else:
            matrix.settle({grant_id: target})
            assert worker.terminate() == 0, worker.tail()
        settled[grant_id] = target
        worker = following
    # A last, plain worker finishes everything.
    worker.open_gate()
    matrix.settle(settled)
    assert worker.terminate() == 0, worker.tail()


def check_notes_and_audit(
    matrix: Matrix, provision: tuple[str, ...], revoke: tuple[str, ...]
) -> None:
    system = matrix.system
    notes = system.ticket_notes(PEDRO.open_ticket_ids[0])
    with system.app.ctx.uow() as uow:
        checked, bad = uow.audit.verify()
        events = uow.audit.entries(limit=100_000)
    assert bad is None, f"audit chain broken at entry {bad}"
    assert checked == len(events)
    for grant in matrix.grants:
        gid = grant["id"]
        # Exactly one note per event on the ticket: granted and revoked, nothing else.
        markers = Counter(
            marker
            for note in notes
            for marker in ("granted", "revoked", "revoke_failed", "failed")
            if f"jitadmin:{gid}:{marker}" in note
        )
        assert markers == {"granted": 1, "revoked": 1}, (gid, markers)
        kinds = Counter(e.kind for e in events if e.grant_id == gid)
        for transition in ("grant.requested", "grant.active", "grant.revoking", "grant.revoked"):
            assert kinds[transition] == 1, (gid, transition, kinds)
        assert kinds["grant.failed"] == 0 and kinds["grant.revoke_failed"] == 0, kinds
        missing = [s for s in (*provision, *revoke) if not kinds[f"account.{s}"]]
        assert not missing, (gid, missing, kinds)
    verify = subprocess.run(
        [sys.executable, "-m", "jitadmin", "audit", "verify"],
        env={**os.environ, "JITADMIN_DATABASE_URL": system.app.settings.effective_database_url,
             "JITADMIN_SECRET_KEY": SECRET_KEY},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert "audit chain intact" in verify.stdout


@pytest.fixture
def api_only(tmp_path: Path, database_url: str) -> Iterator[System]:
    running = start_system(tmp_path, with_worker=False, database_url=database_url)
    yield running
    stop_system(running)


def users_named(system: System, upn: str) -> list[dict[str, Any]]:
    with system.graph(PEDRO.tenant_id) as graph:
        response = graph.get("/users", params={"$filter": f"userPrincipalName eq '{upn}'"})
        response.raise_for_status()
        return list(response.json()["value"])


def test_m365_crash_after_every_step_converges(api_only: System, tmp_path: Path) -> None:
    system = api_only
    matrix = run_matrix(system, tmp_path, "m365", M365_PROVISION, M365_REVOKE)
    for grant in matrix.grants:
        # Verified on the target through Graph: the account is gone, deleted and purged.
        assert users_named(system, grant["username"]) == [], grant["username"]
        with system.graph(PEDRO.tenant_id) as graph:
            user_id = matrix.stored(grant["id"]).account["user_id"]
            assert graph.get(f"/users/{user_id}").status_code == 404
            assert graph.get(f"/directory/deletedItems/{user_id}").status_code == 404
    created = [
        e
        for e in system.world.graph.faults.journal_dicts()
        if e["method"] == "POST" and e["path"] == "/v1.0/users" and e["status"] == 201
    ]
    assert len(created) == len(matrix.grants)  # a crash never made a second account
    check_notes_and_audit(matrix, M365_PROVISION, M365_REVOKE)


# Like the Microsoft 365 matrix, on both databases: claims, leases and recorded progress differ.
def test_ad_crash_after_every_step_converges(
    api_only: System, tmp_path: Path, samba_dc: SambaDc
) -> None:
    system = api_only
    with system.client("admin") as api:
        api.put(
            "/customers/pedroaviary/connections/ad", json=samba_dc.api_settings()
        ).raise_for_status()

    def admin_sd_holder(grants: list[dict[str, Any]]) -> None:
        # On Windows, SDProp marks every Domain Admins member with adminCount=1 (Samba does not
        # run it); revocation must clear it, which makes admin_count_cleared a step to crash at.
        with samba_dc.admin() as dc:
            for grant in grants:
                account = dc.find(grant["username"])
                assert account is not None
                dc.set(account.dn, adminCount="1")

    matrix = run_matrix(
        system, tmp_path, "ad", AD_PROVISION, AD_REVOKE, before_revoking=admin_sd_holder
    )
    with samba_dc.admin() as admin:
        admins_sid = f"{admin.domain_sid()}-512"
        admins_dn = admin.domain_admins_dn().lower()
        members = admin.members(admin.domain_admins_dn())
        for grant in matrix.grants:
            # Verified on the DC over LDAPS: disabled, in no group, not a Domain Admin.
            user = admin.find(grant["username"])
            assert user is not None, grant["username"]
            assert not user.enabled
            assert admins_dn not in user.member_of and user.member_of == []
            assert admins_sid not in user.group_sids
            assert user.dn.lower() not in members
            assert user.number("adminCount") in (None, 0)
    for grant in matrix.grants:
        assert not samba_dc.bind(f"{samba_dc.netbios}\\{grant['username']}", grant["password"])[0]
    check_notes_and_audit(matrix, AD_PROVISION, AD_REVOKE)
