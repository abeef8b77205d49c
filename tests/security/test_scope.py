"""Issue 12 item 1: an admin restricted to customer A cannot make itself (or anyone) unrestricted.

Each test performs an attack from the security review as a restricted admin and asserts the
refusal (403, or 404 for a customer it may not see) and that nothing was written: users,
tokens, customers, connections, the PSA settings and the whole audit trail are unchanged.
Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.insiders import A, B, Insider, add_admin, sign_in, stored_state, tenant_of
from support.system import System, start_system, stop_system


@pytest.fixture
def quiet_system(tmp_path: Path, database_url: str) -> Iterator[System]:
    """No worker: nothing but the requests under test writes to the database."""
    running = start_system(tmp_path, database_url=database_url, with_worker=False)
    yield running
    stop_system(running)


@pytest.fixture
def admin_a(quiet_system: System) -> Insider:
    return add_admin(quiet_system, "admin.a@msp.example", [A])


def _refused(response: Any, status: int = 403) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["detail"])


def test_restricted_admin_cannot_mint_a_token_for_the_unrestricted_admin(
    quiet_system: System, admin_a: Insider
) -> None:
    before = stored_state(quiet_system)
    with admin_a.api(quiet_system) as api:
        detail = _refused(api.post("/tokens", json={"username": "admin"}))
    assert "only to the caller" in detail
    assert stored_state(quiet_system) == before


@pytest.mark.parametrize(
    "body",
    [
        {"username": "evil.root", "role": "admin"},  # unrestricted admin
        {"username": "evil.tech", "role": "technician"},  # unrestricted technician
        {"username": "evil.wide", "role": "admin", "customers": [A, B]},  # wider scope
        {"username": "evil.other", "role": "auditor", "customers": [B]},  # another scope
    ],
)
def test_restricted_admin_cannot_create_users_beyond_its_scope(
    quiet_system: System, admin_a: Insider, body: dict[str, Any]
) -> None:
    before = stored_state(quiet_system)
    with admin_a.api(quiet_system) as api:
        detail = _refused(api.post("/users", json=body))
    assert detail.startswith("customers:")
    assert stored_state(quiet_system) == before


def test_restricted_admin_creates_users_inside_its_scope(
    quiet_system: System, admin_a: Insider
) -> None:
    with admin_a.api(quiet_system) as api:
        made = api.post("/users", json={"username": "tech.a2", "role": "technician",
                                        "customers": [A]})  # fmt: skip
        assert made.status_code == 201, made.text
        listed = {u["username"]: u["customers"] for u in api.get("/users").json()["items"]}
    # It sees the users it manages, never unrestricted ones (the seeded admin and technician).
    assert listed == {"admin.a@msp.example": [A], "tech.a2": [A]}


def test_restricted_admin_cannot_rewrite_global_settings(
    quiet_system: System, admin_a: Insider
) -> None:
    psa = {k: v for k, v in quiet_system.world.psa_settings().items() if k != "admin_url"}
    before = stored_state(quiet_system)
    with admin_a.api(quiet_system) as api:
        attacks = [
            api.put("/psa", json={**psa, "base_url": "https://attacker.example/apis/3.0"}),
            api.post("/psa/test"),
            api.post("/customers", json={"slug": "evil", "name": "Evil", "psa_company_id": 9}),
        ]
    for response in attacks:
        assert "needs an unrestricted admin" in _refused(response)
    assert stored_state(quiet_system) == before


def test_restricted_admin_neither_sees_nor_changes_other_customers(
    quiet_system: System, admin_a: Insider
) -> None:
    tenant_a, tenant_b = tenant_of(quiet_system, A), tenant_of(quiet_system, B)
    assert tenant_a != tenant_b
    web = sign_in(quiet_system, admin_a)
    before = stored_state(quiet_system)
    with web.client(quiet_system) as browser:
        page = browser.get("/admin/customers")
        assert page.status_code == 200
        assert tenant_a in page.text and tenant_b not in page.text and B not in page.text
        assert ">PSA<" not in page.text  # the global settings are not offered
        assert browser.get("/admin/psa").status_code == 403
        fields = {"tenant_id": "evil.onmicrosoft.com", "client_id": "c", "client_secret": "s"}
        posted = browser.post(f"/admin/customers/{B}/connections/m365", data=web.form(**fields))
        assert posted.status_code == 404
    with admin_a.api(quiet_system) as api:
        put = api.put(f"/customers/{B}/connections/m365", json=fields)
        assert put.status_code == 404
        assert [c["slug"] for c in api.get("/customers").json()["items"]] == [A]
        tokens = api.get("/tokens").json()["items"]
        audit = api.get("/audit").json()["items"]
    assert {t["username"] for t in tokens} == {"admin.a@msp.example"}
    assert audit and {e["customer"] for e in audit} == {A}
    assert stored_state(quiet_system) == before
