"""Every bad request is refused with 4xx problem+json naming the field, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from jitadmin.emulators.seed import CUSTOMERS

from support.system import System

PEDRO, NORTHWIND = CUSTOMERS


def body(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "customer": "pedroaviary", "identity_provider": "m365",
        "ticket_id": PEDRO.open_ticket_ids[0],
        "duration_minutes": 30, "reason": "Fix the Conditional Access lockout",
    }  # fmt: skip
    values.update(changes)
    return values


def written(system: System) -> tuple[int, int]:
    with system.app.ctx.uow() as uow:
        return len(uow.grants.find()), len(uow.audit.entries(limit=100_000))


CASES = [
    ("duration zero", body(duration_minutes=0), 422, "duration_minutes", "between 1 and 480"),
    (
        "duration above max",
        body(duration_minutes=481),
        422,
        "duration_minutes",
        "between 1 and 480",
    ),
    ("empty reason", body(reason=""), 422, "reason", "is required"),
    ("short reason", body(reason="too short"), 422, "reason", "at least 10"),
    ("unknown customer", body(customer="nosuchco"), 422, "customer", "no customer"),
    (
        "unknown identity provider",
        body(identity_provider="okta"),
        422,
        "identity_provider",
        "must be one of",
    ),
    (
        "idp not configured",
        body(identity_provider="ad"),
        422,
        "identity_provider",
        "not configured",
    ),
    ("unknown ticket", body(ticket_id="999999"), 422, "ticket_id", "no ticket"),
    ("closed ticket", body(ticket_id=PEDRO.closed_ticket_ids[0]), 422, "ticket_id", "is closed"),
    (
        "ticket of another customer",
        body(ticket_id=NORTHWIND.open_ticket_ids[0]),
        422,
        "ticket_id",
        "another customer",
    ),
    ("duration not a number", body(duration_minutes="lots"), 422, "duration_minutes", "integer"),
    (
        "missing reason",
        {k: v for k, v in body().items() if k != "reason"},
        422,
        "reason",
        "required",
    ),
    ("unexpected field", body(role="Global Administrator"), 422, "role", "not permitted"),
    ("weak chosen password", body(password="weakpassword"), 422, "password", "16 to 128"),
]


@pytest.mark.parametrize(
    ("name", "payload", "status", "field", "rule"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_request_is_refused_and_changes_nothing(
    system: System, name: str, payload: dict[str, Any], status: int, field: str, rule: str
) -> None:
    before = written(system)
    with system.client() as api:
        response = api.post("/grants", json=payload)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert any(e["field"] == field and rule in e["rule"] for e in problem["errors"]), problem
    assert written(system) == before


def test_malformed_json_is_refused(system: System) -> None:
    before = written(system)
    with system.client() as api:
        response = api.post(
            "/grants",
            content=b'{"customer": "pedroaviary",',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "not valid JSON" in response.json()["detail"]
    assert written(system) == before


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer jit_wrong", "Basic YWRtaW46eA=="])
def test_missing_or_wrong_token_is_401(system: System, header: str | None) -> None:
    before = written(system)
    headers = {} if header is None else {"Authorization": header}
    with system.client(None) as api:
        response = api.post("/grants", json=body(), headers=headers)
        listing = api.get("/grants", headers=headers)
    assert response.status_code == 401 and listing.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"] == "Bearer"
    assert written(system) == before


def test_technician_may_not_configure(system: System) -> None:
    before = written(system)
    with system.client() as api:
        created = api.post(
            "/customers", json={"slug": "evilcorp", "name": "Evil", "psa_company_id": "1"}
        )
        psa = api.put("/psa", json={"kind": "connectwise", "base_url": "http://127.0.0.1:1"})
        users = api.post("/users", json={"username": "mallory", "role": "admin"})
    assert [created.status_code, psa.status_code, users.status_code] == [403, 403, 403]
    assert written(system) == before


def test_technicians_see_only_their_own_grants(system: System) -> None:
    with system.client("admin") as admin_api:
        other = admin_api.post(
            "/users", json={"username": "other.tech@msp.example", "role": "technician"}
        ).json()
    with system.client() as api:
        mine = api.post("/grants", json=body()).json()
    other_api = system.client(None)
    other_api.headers["Authorization"] = f"Bearer {other['token']}"
    with other_api:
        assert other_api.get(f"/grants/{mine['id']}").status_code == 404
        assert other_api.get("/grants").json()["items"] == []
        assert other_api.post(f"/grants/{mine['id']}/revoke").status_code == 404
