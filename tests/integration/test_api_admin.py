"""Configuration through the API: customers, connections (secrets write-only), PSA, users."""

from __future__ import annotations

import httpx
from sqlalchemy import MetaData, select

from jitadmin.emulators.seed import CUSTOMERS

from support.config import SECRET_KEY
from support.system import System

PEDRO = CUSTOMERS[0]


def test_customers_list_their_configured_identity_providers(system: System) -> None:
    with system.client() as api:
        items = api.get("/customers").json()["items"]
    by_slug = {c["slug"]: c for c in items}
    assert by_slug["pedroaviary"]["name"] == "Pedro Aviary"
    assert by_slug["pedroaviary"]["identity_providers"] == ["m365"]
    assert by_slug["northwind"]["identity_providers"] == ["m365"]


def test_admin_creates_a_customer_and_connects_it(system: System) -> None:
    graph = system.world.graph_settings(PEDRO)
    with system.client("admin") as api:
        created = api.post(
            "/customers",
            json={
                "slug": "contoso",
                "name": "Contoso",
                "psa_company_id": 999,
                "max_duration_minutes": 60,
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["identity_providers"] == []
        duplicate = api.post(
            "/customers", json={"slug": "contoso", "name": "C", "psa_company_id": 1}
        )
        assert duplicate.status_code == 409
        bad_slug = api.post(
            "/customers", json={"slug": "Not A Slug", "name": "x", "psa_company_id": 1}
        )
        assert bad_slug.status_code == 422
        assert bad_slug.json()["errors"][0]["field"] == "slug"
        saved = api.put(
            "/customers/contoso/connections/m365",
            json={
                "tenant_id": PEDRO.tenant_id,
                "client_id": graph["client_id"],
                "client_secret": "s3cret-value-never-shown",
                "graph_url": graph["base_url"],
                "authority_url": graph["authority_url"],
            },
        )
        assert saved.status_code == 200, saved.text
        assert "client_secret" not in saved.json()["settings"]
        assert "s3cret-value-never-shown" not in saved.text
        listed = {c["slug"]: c for c in api.get("/customers").json()["items"]}
        assert listed["contoso"]["identity_providers"] == ["m365"]
        assert listed["contoso"]["max_duration_minutes"] == 60
        missing = api.put(
            "/customers/nosuch/connections/m365",
            json={"tenant_id": "t", "client_id": "c", "client_secret": "s"},
        )
        assert missing.status_code == 404
    # At rest the secret exists only sealed: every row of every table, on either backend.
    engine = system.app.database.engine
    tables = MetaData()
    tables.reflect(bind=engine)
    with engine.connect() as db:
        dump = "\n".join(
            repr(tuple(row)) for table in tables.sorted_tables for row in db.execute(select(table))
        )
    assert "s3cret-value-never-shown" not in dump
    assert SECRET_KEY not in dump


def test_connection_test_action(system: System) -> None:
    with system.client("admin") as api:
        ok = api.post("/customers/pedroaviary/connections/m365/test")
        assert ok.status_code == 200, ok.text
        assert any("pedroaviary.onmicrosoft.com" in f for f in ok.json()["findings"])
        graph = system.world.graph_settings(PEDRO)
        api.put(
            "/customers/northwind/connections/m365",
            json={
                "tenant_id": graph["tenant_id"],
                "client_id": graph["client_id"],
                "client_secret": "wrong-secret",
                "graph_url": graph["base_url"],
                "authority_url": graph["authority_url"],
            },
        ).raise_for_status()
        bad = api.post("/customers/northwind/connections/m365/test")
        assert bad.status_code == 503
        assert "wrong-secret" not in bad.text
        # A fixed message: the remote's error text (AADSTS7000215 ...) is never echoed.
        assert bad.json()["detail"] == (
            "connection test failed: the server refused the credentials or the settings"
        )
        assert "AADSTS" not in bad.text
    with system.client() as tech:
        assert tech.post("/customers/pedroaviary/connections/m365/test").status_code == 403


def test_tickets_are_the_customers_open_ones(system: System) -> None:
    with system.client() as api:
        items = api.get("/customers/pedroaviary/tickets").json()["items"]
        assert {t["id"] for t in items} == set(PEDRO.open_ticket_ids)
        assert all(set(t) == {"id", "number", "summary", "status"} for t in items)
        assert api.get("/customers/nosuch/tickets").status_code == 404


def test_users_are_created_once_with_password_and_token(system: System) -> None:
    with system.client("admin") as api:
        created = api.post("/users", json={"username": "auditor1", "role": "auditor"})
        assert created.status_code == 201
        body = created.json()
        assert len(body["password"]) >= 16 and body["token"].startswith("jit_")
        assert (
            api.post("/users", json={"username": "auditor1", "role": "auditor"}).status_code == 409
        )
        bad_role = api.post("/users", json={"username": "x1", "role": "god"})
        assert bad_role.status_code == 422 and bad_role.json()["errors"][0]["field"] == "role"
        users = api.get("/users").json()["items"]
        assert {
            "username": "auditor1",
            "role": "auditor",
            "customers": None,
            "disabled": False,
        } in users
        assert all("password" not in u and "token" not in u for u in users)
    auditor = httpx.Client(
        base_url=f"{system.url}/api/v1", headers={"Authorization": f"Bearer {body['token']}"}
    )
    with auditor:
        assert auditor.get("/audit").status_code == 200
        assert auditor.get("/grants").status_code == 200
        assert auditor.get("/users").status_code == 403


def test_restricted_technician_sees_only_their_customers(system: System) -> None:
    with system.client("admin") as api:
        tech = api.post(
            "/users", json={"username": "nw.only", "role": "technician", "customers": ["northwind"]}
        ).json()
    restricted = httpx.Client(
        base_url=f"{system.url}/api/v1", headers={"Authorization": f"Bearer {tech['token']}"}
    )
    with restricted:
        assert [c["slug"] for c in restricted.get("/customers").json()["items"]] == ["northwind"]
        refused = restricted.post(
            "/grants",
            json={
                "customer": "pedroaviary",
                "identity_provider": "m365",
                "ticket_id": PEDRO.open_ticket_ids[0],
                "duration_minutes": 10,
                "reason": "Should not be allowed here",
            },
        )
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "customer"


def test_health_metrics_and_openapi(system: System) -> None:
    assert httpx.get(f"{system.url}/healthz").json()["status"] == "ok"
    metrics = system.metrics()
    assert 'jitadmin_grants{state="active"} 0.0' in metrics
    assert "jitadmin_outbox_pending" in metrics
    spec = httpx.get(f"{system.url}/openapi.json").json()
    for path in (
        "/api/v1/grants",
        "/api/v1/grants/{grant_id}/revoke",
        "/api/v1/grants/{grant_id}/extend",
        "/api/v1/grants/{grant_id}/password",
        "/api/v1/customers/{slug}/tickets",
        "/api/v1/psa",
        "/api/v1/audit",
        "/api/v1/users",
    ):
        assert path in spec["paths"], path
