"""The domain's second DC is down at expiry: the grant is not revoked until that DC shows it.

Two real Samba DCs of one domain (scripts/samba-dc.sh; the second joined the first). They
replicate only when a test says so, so the second DC is a remote site's DC that the first DC's
writes have not reached.
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

from support.ad import SambaDc, load_second_dc, unique_requester
from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


@pytest.fixture
def clock() -> ManualClock:
    # The DCs judge accountExpires by the real clock, so simulated time starts at the real now.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def second_dc(samba_dc: SambaDc) -> Iterator[SambaDc]:
    dc = load_second_dc(samba_dc)
    yield dc
    if not dc.answers():
        dc.start()


@pytest.fixture
def two_dc_system(
    tmp_path: Path, clock: ManualClock, database_url: str, samba_dc: SambaDc, second_dc: SambaDc
) -> Iterator[System]:
    system = start_system(tmp_path, clock=clock, database_url=database_url)
    try:
        with system.client("admin") as admin:
            admin.put(
                "/customers/pedroaviary/connections/ad",
                json={**samba_dc.api_settings(), "other_dcs": second_dc.url},
            ).raise_for_status()
        yield system
    finally:
        stop_system(system)


def advance_until(system: System, clock: ManualClock, grant_id: str, state: str) -> dict[str, Any]:
    def step() -> dict[str, Any] | None:
        grant = system.grant(grant_id)
        if grant["state"] == state:
            return grant
        assert grant["state"] != "revoked", "marked revoked while the second DC could not confirm"
        assert grant["state"] != "failed", grant["last_error"]
        clock.advance(timedelta(minutes=1))
        return None

    return wait_for(step, what=f"grant {grant_id} to reach {state}")


def _admin_on(dc: SambaDc, sam: str) -> tuple[bool, bool]:
    with dc.admin() as admin:
        user = admin.find(sam)
        assert user is not None, f"{sam} is not on {dc.url}"
        return user.enabled, admin.domain_admins_dn().lower() in user.member_of


def test_second_dc_down_at_expiry_keeps_the_grant_unrevoked_until_it_is_back(
    two_dc_system: System, clock: ManualClock, samba_dc: SambaDc, second_dc: SambaDc
) -> None:
    system = two_dc_system
    with system.client("admin") as admin:
        token = admin.post(
            "/users", json={"username": unique_requester("twodc"), "role": "technician"}
        ).json()["token"]
    tech = httpx.Client(
        base_url=f"{system.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    body = {
        "customer": "pedroaviary", "identity_provider": "ad",
        "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
        "reason": "Two DCs: the second one reboots at expiry",
    }  # fmt: skip
    with tech:
        created = tech.post("/grants", json=body).json()
    sam, password = created["username"], created["password"]
    # Not active before the second DC has the account: replicate once the first DC has it.
    wait_for(lambda: _exists(samba_dc, sam), what=f"{sam} on the first DC")
    assert system.grant(created["id"])["state"] != "active"
    second_dc.replicate("here")
    advance_until(system, clock, created["id"], "active")
    assert _admin_on(second_dc, sam) == (True, True)

    second_dc.stop()
    try:
        clock.advance(timedelta(minutes=31))
        revoking = wait_for(
            lambda: g if (g := system.grant(created["id"]))["last_error"] else None,
            what="the first failed revoke attempt",
        )
        assert revoking["state"] in ("revoking", "revoke_failed")
        assert "ldaps://127.0.0.78:636 cannot be reached" in revoking["last_error"]
        assert password not in revoking["last_error"]
        # The first DC is done already; the grant still does not say revoked.
        assert _admin_on(samba_dc, sam) == (False, False)
        failed = advance_until(system, clock, created["id"], "revoke_failed")
        assert failed["revoked_at"] is None
    finally:
        second_dc.start()

    revoked = advance_until(system, clock, created["id"], "revoked")
    assert revoked["revoked_at"] is not None
    assert _admin_on(second_dc, sam) == (False, False)
    assert not second_dc.bind(f"{second_dc.netbios}\\{sam}", password)[0]


def _exists(dc: SambaDc, sam: str) -> bool:
    with dc.admin() as admin:
        return admin.find(sam) is not None
