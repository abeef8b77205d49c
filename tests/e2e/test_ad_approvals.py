"""Approvals on on-prem AD, on a real Samba AD DC: a request that needs approval creates no
account in the domain until an approver says yes; then the normal path makes it a Domain
Admin, and the granted note names the approver. A rejected request leaves the domain as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.emulators.seed import CUSTOMERS

from support.ad import SambaDc, unique_requester
from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


def client(system: System, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{system.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.fixture
def ad_system(tmp_path: Path, samba_dc: SambaDc) -> Iterator[System]:
    system = start_system(tmp_path)
    try:
        with system.client("admin") as admin:
            saved = admin.put("/customers/pedroaviary/connections/ad", json=samba_dc.api_settings())
            assert saved.status_code == 200, saved.text
            policy = admin.put("/customers/pedroaviary/policy", json={"approval_required": ["ad"]})
            assert policy.status_code == 200, policy.text
        yield system
    finally:
        stop_system(system)


def new_user(system: System, role: str) -> dict[str, Any]:
    with system.client("admin") as admin:
        made = admin.post("/users", json={"username": unique_requester(), "role": role})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def test_an_ad_request_waits_with_no_account_then_an_approval_grants_it(
    ad_system: System, samba_dc: SambaDc
) -> None:
    system = ad_system
    tech, approver = new_user(system, "technician"), new_user(system, "approver")
    ticket = str(system.world.ground_truth().add_ticket(PEDRO.psa_company_id, "Renew DC cert"))
    body = {
        "customer": "pedroaviary", "identity_provider": "ad", "ticket_id": ticket,
        "duration_minutes": 30, "reason": "Replace the failing DC certificate",
    }  # fmt: skip
    with client(system, tech["token"]) as api:
        rejected = api.post("/grants", json=body).json()
        assert rejected["state"] == "pending_approval"
    sam = rejected["username"]
    with samba_dc.admin() as admin:
        assert admin.find(sam) is None
    with client(system, approver["token"]) as api:
        refused = api.post(f"/grants/{rejected['id']}/reject", json={"comment": "wrong ticket"})
        assert refused.json()["state"] == "rejected", refused.text
    with samba_dc.admin() as admin:
        assert admin.find(sam) is None

    with client(system, tech["token"]) as api:
        created = api.post("/grants", json=body).json()
    assert created["state"] == "pending_approval" and created["username"] == sam
    with samba_dc.admin() as admin:
        assert admin.find(sam) is None
    with client(system, approver["token"]) as api:
        approved = api.post(f"/grants/{created['id']}/approve", json={"comment": "go"})
        assert approved.json()["state"] == "provisioning", approved.text
    system.wait_state(created["id"], "active", timeout=60)
    assert samba_dc.bind(f"{samba_dc.netbios}\\{sam}", created["password"]) == (True, "")
    with samba_dc.admin() as admin:
        user = admin.find(sam)
        admins_dn = admin.domain_admins_dn().lower()
    assert user is not None and admins_dn in user.member_of
    marker = f"jitadmin:{created['id']}:granted"
    (note,) = wait_for(
        lambda: [n for n in system.ticket_notes(ticket) if marker in n], what="the granted note"
    )
    assert f"Approved by {approver['username']}." in note
    with client(system, tech["token"]) as api:
        assert api.post(f"/grants/{created['id']}/revoke").status_code == 202
    system.wait_state(created["id"], "revoked", timeout=60)
