"""Issue 12 item 3: the grantee, as Global Administrator, rewrites its own tag and name through
Graph (its own ROPC token, PATCH /users/{id} on itself). Revocation goes by the object id
jitadmin recorded, so it still ends revoked, with the tampering made loud."""

from __future__ import annotations

import re

from jitadmin.emulators.seed import CUSTOMERS

from support.system import System, outbox_drained
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


def _metric(system: System, name: str) -> float:
    text = system.metrics()
    found = re.search(rf'^{re.escape(name)}{{identity_provider="m365"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_grantee_rewriting_its_own_tag_and_name_cannot_keep_global_admin(system: System) -> None:
    with system.client() as tech:
        created = tech.post(
            "/grants",
            json={"customer": PEDRO.slug, "identity_provider": "m365",
                  "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
                  "reason": "Tamper drill"},
        )  # fmt: skip
    assert created.status_code == 202, created.text
    grant = created.json()
    active = system.wait_state(grant["id"], "active")
    with system.app.ctx.uow() as uow:
        stored = uow.grants.get(grant["id"])
        assert stored is not None
        user_id = stored.account["user_id"]
        assert stored.tenant_id  # pinned at provisioning
    me = system.grantee_graph(active["username"], grant["password"])
    changed = me.patch(
        f"/users/{user_id}", json={"employeeType": "employee", "displayName": "Jane Doe"}
    )
    assert changed.status_code == 204, changed.text

    with system.client("admin") as admin:
        admin.post(f"/grants/{grant['id']}/revoke").raise_for_status()
    system.wait_state(grant["id"], "revoked")
    state = system.world.graph
    assert state.find_user(PEDRO.tenant_id, user_id) is None
    assert all(u.id != user_id for u in state.deleted_users(PEDRO.tenant_id))
    assert all(a.principal_id != user_id for a in state.assignments(PEDRO.tenant_id))
    with system.app.ctx.uow() as uow:
        kinds = [e.kind for e in uow.audit.entries(grant_id=grant["id"])]
        tamper = [e for e in uow.audit.entries(grant_id=grant["id"])
                  if e.kind == "account.tampering_detected"]  # fmt: skip
    assert tamper and "employeeType" in tamper[0].data["tampered_fields"]
    assert "displayName" in tamper[0].data["tampered_fields"]
    assert "grant.revoke_failed" not in kinds
    wait_for(lambda: outbox_drained(system, grant["id"]), what="the notes")
    notes = [n for n in system.ticket_notes(PEDRO.open_ticket_ids[0])
             if f"jitadmin:{grant['id']}:tampered" in n]  # fmt: skip
    assert len(notes) == 1
    assert _metric(system, "jitadmin_tampering_total") == 1.0
