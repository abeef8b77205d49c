"""Issue 12 item 5: a grant is pinned to the tenant it was provisioned in."""

from __future__ import annotations

import json
from dataclasses import replace

from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.services.context import settings_context

from support.system import System

PEDRO, OTHER = CUSTOMERS[0], CUSTOMERS[1]


def _active_grant(system: System) -> dict[str, str]:
    with system.client() as tech:
        created = tech.post(
            "/grants",
            json={"customer": PEDRO.slug, "identity_provider": "m365",
                  "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
                  "reason": "Pinning drill"},
        )  # fmt: skip
    assert created.status_code == 202, created.text
    system.wait_state(created.json()["id"], "active")
    return dict(created.json())


def test_switching_tenant_with_an_active_grant_is_409_and_writes_nothing(system: System) -> None:
    _active_grant(system)
    with system.app.ctx.uow() as uow:
        before = uow.connections.get(PEDRO.slug, "m365")
        events_before = len(uow.audit.entries(limit=10_000))
    assert before is not None
    body = {**system.world.graph_settings(OTHER), "tenant_id": OTHER.tenant_id}
    body = {k: body[k] for k in ("tenant_id", "client_id", "client_secret", "authority_url",
                                 "graph_url") if k in body}  # fmt: skip
    with system.client("admin") as admin:
        refused = admin.put(f"/customers/{PEDRO.slug}/connections/m365", json=body)
    assert refused.status_code == 409, refused.text
    assert "switch tenant" in refused.text
    with system.app.ctx.uow() as uow:
        assert uow.connections.get(PEDRO.slug, "m365") == before
        assert len(uow.audit.entries(limit=10_000)) == events_before


def test_revoke_in_another_tenant_is_refused_loudly(system: System) -> None:
    grant = _active_grant(system)
    with system.app.ctx.uow() as uow:
        record = uow.connections.get(PEDRO.slug, "m365")
        pinned = uow.grants.get(grant["id"])
        assert record is not None and pinned is not None and pinned.tenant_id
        # A path around the 409 by someone holding the key (a bare database write no longer
        # opens the secret at all: test_db_write_access): the connection reaches another tenant.
        ctx = system.app.ctx
        settings = {**record.settings, "tenant_id": OTHER.tenant_id}
        secret = json.dumps(ctx.open_secrets(record))
        sealed = ctx.box.seal(secret, settings_context(PEDRO.slug, "m365", settings))
        forced = replace(record, settings=settings, secret_sealed=sealed)
        uow.connections.put(forced, system.app.ctx.clock.now())
        uow.commit()
    with system.client("admin") as admin:
        admin.post(f"/grants/{grant['id']}/revoke").raise_for_status()
    failed = system.wait_state(grant["id"], "revoke_failed")
    assert "another tenant" in failed["last_error"]
    # Nothing was touched in either tenant: the account still exists where it was made.
    assert system.world.graph.find_user(PEDRO.tenant_id, pinned.account["user_id"]) is not None
    with system.app.ctx.uow() as uow:
        kinds = [e.kind for e in uow.audit.entries(grant_id=grant["id"])]
    assert "grant.revoke_failed" in kinds and "grant.revoked" not in kinds
