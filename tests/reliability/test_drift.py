"""Drift: admin rights given back by hand are taken away again by the reconciler, and an active
grant whose access vanished is flagged.

The worker's own reconciler thread runs every second here (``reconcile_interval_seconds``); the
tests only poll, with deadlines, for what a pass must leave behind. AD runs against the real
Samba DC, M365 against the Graph emulator over HTTP.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from ldap3 import MODIFY_ADD

from jitadmin.adapters.clock import ManualClock
from jitadmin.adapters.m365.directory import GLOBAL_ADMIN_ROLE_ID, display_name
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.ports import StoredAuditEvent
from jitadmin.services.reconcile import reconcile_due

from support.ad import SambaDc, unique_requester
from support.receiver import receiver, subscribe
from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]
TICKET = PEDRO.open_ticket_ids[0]
INTERVAL_S = 1.0
HOOK_SECRET = "the-security-lead-hook-secret"
DEADLINE_S = 60.0  # generous for a loaded machine; a pass normally follows within a second


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    running = start_system(tmp_path, reconcile_interval_seconds=INTERVAL_S)
    yield running
    stop_system(running)


def request(api: httpx.Client, kind: str) -> dict[str, Any]:
    response = api.post(
        "/grants",
        json={
            "customer": PEDRO.slug, "identity_provider": kind, "ticket_id": TICKET,
            "duration_minutes": 30, "reason": "Drift drill",
        },
    )  # fmt: skip
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


def revoke(system: System, grant_id: str) -> None:
    with system.client("admin") as admin:
        admin.post(f"/grants/{grant_id}/revoke").raise_for_status()
    system.wait_state(grant_id, "revoked")


def events(system: System, grant_id: str, kind: str) -> list[StoredAuditEvent]:
    with system.app.ctx.uow() as uow:
        return [e for e in uow.audit.entries(grant_id=grant_id) if e.kind == kind]


def metric(system: System, name: str, **labels: str) -> float:
    text = system.metrics()
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def drift_notes(system: System, grant_id: str) -> list[str]:
    return [n for n in system.ticket_notes(TICKET) if f"jitadmin:{grant_id}:drift-" in n]


# --- Active Directory, on the Samba DC --------------------------------------------------


@pytest.fixture
def ad_ou(samba_dc: SambaDc) -> str:
    """An OU of this test only: the reconciler searches it, not the shared domain."""
    ou = f"OU=jitdrift-{uuid.uuid4().hex[:8]},{samba_dc.base_dn}"
    with samba_dc.admin() as admin:
        admin.ok(admin.conn.add(ou, ["top", "organizationalUnit"]))
    return ou


def connect_ad(system: System, dc: SambaDc, ou: str) -> httpx.Client:
    with system.client("admin") as admin:
        saved = admin.put(
            f"/customers/{PEDRO.slug}/connections/ad", json={**dc.api_settings(), "ou": ou}
        )
        assert saved.status_code == 200, saved.text
        tech = admin.post("/users", json={"username": unique_requester(), "role": "technician"})
        token = tech.json()["token"]
    return httpx.Client(
        base_url=f"{system.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_ad_re_added_to_domain_admins_is_removed_again(
    system: System, samba_dc: SambaDc, ad_ou: str
) -> None:
    with connect_ad(system, samba_dc, ad_ou) as tech:
        grant = request(tech, "ad")
    system.wait_state(grant["id"], "active")
    revoke(system, grant["id"])
    with samba_dc.admin() as admin:
        user = admin.find(grant["username"])
        assert user is not None
        dn = user.dn
        admins_dn = admin.domain_admins_dn()
        admins_sid = f"{admin.domain_sid()}-512"
        # A real administrator in the same OU, without jitadmin's tag: never to be touched.
        other = admin.add_user(f"dadm{uuid.uuid4().hex[:8]}", ou=ad_ou, employeeType="x")
        admin.ok(admin.conn.modify(admins_dn, {"member": [(MODIFY_ADD, [other])]}))
        # A domain administrator puts the revoked tech account back into Domain Admins.
        admin.ok(admin.conn.modify(admins_dn, {"member": [(MODIFY_ADD, [dn])]}))
        assert admins_sid in admin.read(dn).group_sids

    def undone() -> bool:
        with samba_dc.admin() as admin:
            back = admin.read(dn)
        return admins_sid not in back.group_sids and bool(
            events(system, grant["id"], "drift.revoked")
        )

    try:
        wait_for(undone, timeout=DEADLINE_S, what="the reconciler to take Domain Admins away")
        with samba_dc.admin() as admin:
            assert not admin.read(dn).enabled
            assert admins_sid in admin.read(other).group_sids
    finally:
        with samba_dc.admin() as admin:
            admin.conn.delete(other)
    detected = events(system, grant["id"], "drift.detected")
    assert len(detected) == 1 and detected[0].actor == "system:reconciler"
    assert detected[0].data["username"] == grant["username"] and detected[0].data["holds_admin"]
    assert metric(system, "jitadmin_drift_total", kind="admin_without_grant") == 1.0
    notes = wait_for(lambda: drift_notes(system, grant["id"]), what="the drift note")
    assert len(notes) == 1 and f"jitadmin:{grant['id']}:drift-1" in notes[0]
    assert grant["username"] in notes[0] and "Domain Admins" in notes[0]
    # The ledger is history: the grant stays revoked.
    assert system.grant(grant["id"])["state"] == "revoked"


# --- Microsoft 365, on the Graph emulator -----------------------------------------------


def test_m365_role_given_to_a_managed_account_again_is_undone(system: System) -> None:
    with system.client() as tech:
        grant = request(tech, "m365")
    system.wait_state(grant["id"], "active")
    revoke(system, grant["id"])
    with receiver() as hook:
        subscribe(system, hook, ["drift.detected"], HOOK_SECRET)
        m365_drift_is_undone(system, grant)
        # The security lead is told, once, by every channel that asked for drift.
        told = wait_for(
            lambda: list(hook.accepted_once().values()), what="the drift.detected notification"
        )
        assert [r.headers["x-jitadmin-event"] for r in told] == ["drift.detected"]
        assert told[0].signed_by(HOOK_SECRET)
        body = told[0].json()
        assert body["grant"]["id"] == grant["id"] and body["url"].endswith(f"/grants/{grant['id']}")
        assert "password" not in told[0].body.decode()


def m365_drift_is_undone(system: System, grant: dict[str, Any]) -> None:
    with system.graph(PEDRO.tenant_id) as graph:
        # The account was purged at revoke. Someone brings "it" back: an account tagged for
        # this grant, made a Global Administrator. And a real admin nobody may touch.
        tagged = create_admin(graph, "drift-restored", employeeType="jitadmin",
                              displayName=display_name(grant["id"]))  # fmt: skip
        foreign = create_admin(graph, "real-admin", displayName="A real administrator")

        def undone() -> bool:
            gone = graph.get(f"/users/{tagged}").status_code == 404
            return gone and bool(events(system, grant["id"], "drift.revoked"))

        wait_for(undone, timeout=DEADLINE_S, what="the reconciler to remove the account again")
        assert roles_of(graph, tagged) == []
        assert graph.get(f"/directory/deletedItems/{tagged}").status_code == 404  # purged
        # The untagged administrator is still there, still Global Administrator.
        assert graph.get(f"/users/{foreign}").status_code == 200
        assert roles_of(graph, foreign) == [GLOBAL_ADMIN_ROLE_ID]
    assert metric(system, "jitadmin_drift_total", kind="admin_without_grant") == 1.0
    notes = wait_for(lambda: drift_notes(system, grant["id"]), what="the drift note")
    assert len(notes) == 1 and "an admin role" in notes[0]


def test_m365_active_grant_whose_role_was_removed_is_flagged(system: System) -> None:
    with system.client() as tech:
        grant = request(tech, "m365")
    active = system.wait_state(grant["id"], "active")
    assert active["last_error"] is None
    with system.app.ctx.uow() as uow:
        stored = uow.grants.get(grant["id"])
        assert stored is not None
        assignment = stored.account["assignment_id"]
    with system.graph(PEDRO.tenant_id) as graph:
        graph.delete(f"/roleManagement/directory/roleAssignments/{assignment}").raise_for_status()

    flagged = wait_for(
        lambda: g if (g := system.grant(grant["id"]))["last_error"] else None,
        timeout=DEADLINE_S,
        what="the grant to be flagged",
    )
    assert flagged["state"] == "active"  # flagged, not moved: it still ends on time
    assert flagged["last_error"].startswith("drift: admin access not found")
    assert len(events(system, grant["id"], "drift.access_missing")) == 1
    assert metric(system, "jitadmin_drift_total", kind="access_missing") == 1.0
    assert events(system, grant["id"], "drift.revoked") == []  # nothing to take away
    # Revocation still works, and counts its lag.
    revoke(system, grant["id"])
    assert metric(system, "jitadmin_revocation_lag_seconds_count", identity_provider="m365") == 1


def create_admin(graph: httpx.Client, nickname: str, **attributes: str) -> str:
    domain = PEDRO.domain
    body = {
        "accountEnabled": True, "mailNickname": nickname,
        "userPrincipalName": f"{nickname}-{uuid.uuid4().hex[:6]}@{domain}",
        "passwordProfile": {"password": "Drift-Drill-Pass-1!",
                            "forceChangePasswordNextSignIn": False},
        **attributes,
    }  # fmt: skip
    created = graph.post("/users", json=body)
    assert created.status_code == 201, created.text
    user_id = str(created.json()["id"])
    assigned = graph.post(
        "/roleManagement/directory/roleAssignments",
        json={"roleDefinitionId": GLOBAL_ADMIN_ROLE_ID, "principalId": user_id,
              "directoryScopeId": "/"},
    )  # fmt: skip
    assert assigned.status_code == 201, assigned.text
    return user_id


def roles_of(graph: httpx.Client, user_id: str) -> list[str]:
    listed = graph.get(
        "/roleManagement/directory/roleAssignments",
        params={"$filter": f"principalId eq '{user_id}'"},
    )
    listed.raise_for_status()
    return [str(a["roleDefinitionId"]) for a in listed.json()["value"]]


# --- one reconciler per customer at a time ----------------------------------------------


def test_a_customer_is_reconciled_by_one_worker_per_interval(
    tmp_path: Path, clock: ManualClock
) -> None:
    system = start_system(tmp_path, clock=clock, with_worker=False)  # no background passes
    try:
        ctx, interval = system.app.ctx, 300.0
        first = reconcile_due(ctx, "worker-a", interval)
        assert sorted((r.customer, r.kind) for r in first) == sorted(
            (c.slug, "m365") for c in CUSTOMERS
        )
        assert all(r.errors == [] for r in first)
        # Within the interval nobody reconciles again, whichever worker asks.
        assert reconcile_due(ctx, "worker-b", interval) == []
        # A worker holding the lease (mid-pass) keeps the others off that customer.
        clock.advance(timedelta(seconds=interval + 1))
        now = clock.now()
        with ctx.uow() as uow:
            assert uow.runtime.claim_reconcile(
                PEDRO.slug, "m365", "worker-c", now, now + timedelta(minutes=10),
                not_run_since=now - timedelta(seconds=interval),
            )  # fmt: skip
            uow.commit()
        second = reconcile_due(ctx, "worker-b", interval)
        assert [r.customer for r in second] == [c.slug for c in CUSTOMERS if c is not PEDRO]
    finally:
        stop_system(system)


def test_m365_untagged_global_admin_matching_a_ledger_id_is_found(system: System) -> None:
    """The grantee strips its own tag and name: the drift pass still finds it among the Global
    Administrator role's members by the ledger's object id, reports tampering, and does not
    take the grant's access for missing."""
    with system.client() as tech:
        grant = request(tech, "m365")
    active = system.wait_state(grant["id"], "active")
    with system.app.ctx.uow() as uow:
        stored = uow.grants.get(grant["id"])
        assert stored is not None
        user_id = stored.account["user_id"]
    with system.grantee_graph(active["username"], grant["password"]) as me:
        patched = me.patch(
            f"/users/{user_id}", json={"employeeType": None, "displayName": "Nobody"}
        )
    assert patched.status_code == 204, patched.text
    found = wait_for(
        lambda: events(system, grant["id"], "account.tampering_detected"),
        timeout=DEADLINE_S,
        what="the drift pass to report the tampering",
    )
    assert found[0].actor == "system:reconciler"
    assert metric(system, "jitadmin_tampering_total", identity_provider="m365") == 1.0
    assert events(system, grant["id"], "drift.access_missing") == []
    assert system.grant(grant["id"])["state"] == "active"
    revoke(system, grant["id"])
    assert system.world.graph.find_user(PEDRO.tenant_id, user_id) is None
