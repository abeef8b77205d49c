"""Issue 12 item 2: nobody mints credentials for someone else, every audit event names the
credential that acted, and the reveal limit holds for all admins together.

On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from jitadmin.ports import AuditQuery, User
from jitadmin.services import grants, sessions

from support.insiders import A, add_admin, sign_in, stored_state
from support.system import System, start_system, stop_system


@pytest.fixture
def quiet_system(tmp_path: Path, database_url: str) -> Iterator[System]:
    """No worker: nothing but the requests under test writes to the database."""
    running = start_system(
        tmp_path, database_url=database_url, with_worker=False,
        reveal_limit_per_hour=10, reveal_limit_global_per_hour=30,
    )  # fmt: skip
    yield running
    stop_system(running)


def _token_ids(system: System, username: str) -> set[int]:
    with system.app.ctx.uow() as uow:
        return {t.id for t in uow.api_tokens.all() if t.username == username}


def test_an_admin_cannot_mint_a_token_for_a_technician(quiet_system: System) -> None:
    technician = quiet_system.users["technician"]["username"]
    before = stored_state(quiet_system)
    with quiet_system.client("admin") as api:
        refused = api.post("/tokens", json={"username": technician})
    assert refused.status_code == 403, refused.text
    assert "issued only to the caller themselves" in refused.json()["detail"]
    assert stored_state(quiet_system) == before


def test_everyone_mints_tokens_for_themselves(quiet_system: System) -> None:
    technician = quiet_system.users["technician"]["username"]
    with quiet_system.client("technician") as api:
        minted = api.post("/tokens")
        assert minted.status_code == 201, minted.text
        named = api.post("/tokens", json={"username": technician})
        assert named.status_code == 201, named.text
    assert minted.json()["username"] == technician
    for token in (minted.json()["token"], named.json()["token"]):
        with quiet_system.client(None) as api:
            mine = api.get("/grants", headers={"Authorization": f"Bearer {token}"})
            assert mine.status_code == 200


def test_audit_events_name_the_api_token_that_acted(quiet_system: System) -> None:
    (admin_token,) = _token_ids(quiet_system, "admin")
    with quiet_system.client("admin") as api:
        made = api.post("/customers", json={"slug": "acme", "name": "Acme", "psa_company_id": 5})
        assert made.status_code == 201
        minted = api.post("/tokens").json()["token"]
        events = api.get("/audit", params={"actor": "admin"}).json()["items"]
    created = next(e for e in events if e["kind"] == "customer.created")
    issued = next(e for e in events if e["kind"] == "token.issued")
    assert created["credential"] == issued["credential"] == f"token:{admin_token}"
    new_id = issued["data"]["token_id"]
    with quiet_system.client(None) as api:
        auth = {"Authorization": f"Bearer {minted}"}
        api.post("/customers", json={"slug": "acme2", "name": "Acme 2", "psa_company_id": 6},
                 headers=auth).raise_for_status()  # fmt: skip
    with quiet_system.app.ctx.uow() as uow:
        (second,) = uow.audit.search(AuditQuery(customer="acme2"), 10)
        assert second.credential == f"token:{new_id}"
        assert minted not in str(uow.audit.search(AuditQuery(), 1000))
    _credential_is_hashed(quiet_system, second.seq)


def _credential_is_hashed(system: System, seq: int) -> None:
    """The chain covers the credential: rewriting it is detected by ``audit verify``."""
    with system.app.ctx.uow() as uow:
        assert uow.audit.verify()[1] is None
    engine = system.app.database.engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE grant_events SET credential = 'token:1' WHERE seq = :s"),
                     {"s": seq})  # fmt: skip
    with system.app.ctx.uow() as uow:
        assert uow.audit.verify()[1] == seq


def test_audit_events_name_the_web_session_that_acted(quiet_system: System) -> None:
    boss = add_admin(quiet_system, "boss@msp.example")
    web = sign_in(quiet_system, boss)
    handle = sessions.credential_of(web.session_id)
    with web.client(quiet_system) as browser:
        fields = {"slug": "webco", "name": "Web Co", "psa_company_id": "7", "domain_prefix": ""}
        assert browser.post("/admin/customers", data=web.form(**fields)).status_code == 200
        assert browser.post("/signout", data=web.form()).status_code == 303
    with quiet_system.app.ctx.uow() as uow:
        mine = uow.audit.search(AuditQuery(actor=boss.username), 100)
    kinds = {e.kind: e.credential for e in mine}
    assert kinds["auth.signed_in"] == kinds["customer.created"] == handle
    assert kinds["auth.signed_out"] == handle
    assert handle.startswith("session:") and web.session_id not in str(mine)
    assert sessions.session_hash(quiet_system.app.ctx, web.session_id) not in str(mine)


def test_reveal_limit_holds_for_all_admins_together(quiet_system: System) -> None:
    """Four admins, 10 reveals/hour each, 30/hour for the installation: the 31st is refused
    (though its admin has revealed nothing yet), with an alert event and a metric."""
    ctx = quiet_system.app.ctx
    customer = next(c for c in quiet_system.world.customers if c.slug == A)
    made = grants.request_grant(
        ctx, User("tech@msp.example", "technician"), customer=A, identity_provider="m365",
        ticket_id=str(customer.open_ticket_ids[0]), duration_minutes=30, reason="reveal limit",
    )  # fmt: skip
    admins = [add_admin(quiet_system, f"admin{i}@msp.example") for i in range(4)]
    url = f"/grants/{made.grant.id}/password"
    for who in admins[:3]:
        with who.api(quiet_system) as api:
            for _ in range(10):
                shown = api.post(url, json={"reason": "customer called"})
                assert shown.status_code == 200, shown.text
    with admins[3].api(quiet_system) as api:
        refused = api.post(url, json={"reason": "one more"})
    assert refused.status_code == 429
    assert "for all admins together" in refused.json()["detail"]
    assert made.password not in refused.text
    with ctx.uow() as uow:
        trail = uow.audit.search(AuditQuery(grant_id=made.grant.id), 1000)
    kinds = [e.kind for e in trail]
    assert kinds.count("grant.password_revealed") == 30
    assert kinds.count("grant.password_reveal_refused") == 1
    (alert,) = [e for e in trail if e.kind == "alert.reveal_limit_exceeded"]
    assert alert.actor == admins[3].username and alert.credential is not None
    assert alert.data["scope"] == "installation" and alert.data["count"] == 30
    metric = quiet_system.app.metrics.registry.get_sample_value(
        "jitadmin_security_alerts_total", {"kind": "reveal_limit_exceeded"}
    )
    assert metric == 1.0
