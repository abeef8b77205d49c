"""The domain controller is down at the moment of expiry: revocation waits, loudly, and happens
once the DC is back. Nothing is marked revoked before the DC has confirmed it.

The real Samba DC is stopped (scripts/samba-dc.sh stop) and started again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.seed import CUSTOMERS

from support.ad import SambaDc, unique_requester
from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


@pytest.fixture
def clock() -> ManualClock:
    # The DC judges accountExpires by the real clock, so simulated time starts at the real now.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def ad_system(tmp_path: Path, clock: ManualClock, samba_dc: SambaDc) -> Iterator[System]:
    system = start_system(tmp_path, clock=clock)
    try:
        with system.client("admin") as admin:
            admin.put(
                "/customers/pedroaviary/connections/ad", json=samba_dc.api_settings()
            ).raise_for_status()
        yield system
    finally:
        stop_system(system)


def advance_until(system: System, clock: ManualClock, grant_id: str, state: str) -> dict[str, Any]:
    """Let simulated time pass a minute at a time until the grant reaches ``state``."""

    def step() -> dict[str, Any] | None:
        grant = system.grant(grant_id)
        if grant["state"] == state:
            return grant
        assert grant["state"] != "revoked", "marked revoked while the DC could not confirm it"
        clock.advance(timedelta(minutes=1))
        return None

    return wait_for(step, what=f"grant {grant_id} to reach {state}")


def test_dc_down_at_expiry_delays_revocation_and_never_cancels_it(
    ad_system: System, clock: ManualClock, samba_dc: SambaDc
) -> None:
    system = ad_system
    with system.client("admin") as admin:
        token = admin.post(
            "/users", json={"username": unique_requester("outage"), "role": "technician"}
        ).json()["token"]
    tech = httpx.Client(
        base_url=f"{system.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    body = {
        "customer": "pedroaviary", "identity_provider": "ad",
        "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
        "reason": "Outage drill: the DC reboots at expiry",
    }  # fmt: skip
    with tech:
        created = tech.post("/grants", json=body).json()
        sam, password = created["username"], created["password"]
        system.wait_state(created["id"], "active")
        assert samba_dc.bind(f"{samba_dc.netbios}\\{sam}", password)[0]

        samba_dc.stop()
        try:
            clock.advance(timedelta(minutes=31))
            # First it keeps trying, with the failure visible...
            revoking = wait_for(
                lambda: g if (g := system.grant(created["id"]))["last_error"] else None,
                what="the first failed revoke attempt",
            )
            assert revoking["state"] in ("revoking", "revoke_failed")
            assert "unreachable" in revoking["last_error"]
            # ...then it is loud about it.
            failed = advance_until(system, clock, created["id"], "revoke_failed")
            assert failed["revoked_at"] is None
            assert "unreachable" in failed["last_error"]
            assert password not in failed["last_error"]
            assert "jitadmin_revoke_failed_grants 1.0" in system.metrics()
            wait_for(
                lambda: [
                    n
                    for n in system.ticket_notes(PEDRO.open_ticket_ids[0])
                    if f"jitadmin:{created['id']}:revoke_failed" in n
                ],
                what="the revoke_failed ticket note",
            )
            # The same account must not be re-enabled while its revocation is unverified.
            again = tech.post("/grants", json={**body, "ticket_id": PEDRO.open_ticket_ids[1]})
            assert again.status_code == 409, again.text
            assert "still revoke_failed" in again.json()["detail"]
            for _ in range(3):  # more attempts while down: still not revoked
                clock.advance(timedelta(minutes=1))
                assert system.grant(created["id"])["state"] == "revoke_failed"
        finally:
            samba_dc.start()

        revoked = advance_until(system, clock, created["id"], "revoked")
        assert revoked["revoked_at"] is not None
    with samba_dc.admin() as admin:
        user = admin.find(sam)
        admins_sid = f"{admin.domain_sid()}-512"
    assert user is not None
    assert not user.enabled and user.member_of == [] and admins_sid not in user.group_sids
    assert not samba_dc.bind(f"{samba_dc.netbios}\\{sam}", password)[0]
