"""Attack: oversized text and control characters on every write that takes text (issue 12
item 12 f). PostgreSQL used to answer 500 to a 10 000-character ticket id (a String(64)
column) and to any NUL byte; now each is a 422 naming the field and the rule, before anything
is looked up or written. Every case runs through the REST API and the web console's forms, on
SQLite and on PostgreSQL, and the stored state is compared before and after each attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from jitadmin.emulators.seed import CUSTOMERS

from support.insiders import add_admin, sign_in, written
from support.system import System, outbox_drained
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]
LONG = "7" * 10_000
LONGER = "7" * 20_000  # a CA certificate chain may be up to 16 384 characters
Body = Callable[[str], dict[str, Any]]


def hostile(rule: str, valid: str, field: str = "") -> str:
    """``long``: 10 000 characters (20 000 for a CA certificate); ``nul``: a valid value with
    a NUL byte inside."""
    if rule == "long":
        return LONGER if field == "ca_pem" else LONG
    return valid[:2] + "\x00" + valid[2:]


def grant_body(**changed: str) -> dict[str, Any]:
    return {
        "customer": PEDRO.slug,
        "identity_provider": "m365",
        "ticket_id": str(PEDRO.open_ticket_ids[1]),
        "duration_minutes": 30,
        "reason": "Fix the Conditional Access lockout",
        **changed,
    }


M365 = {
    "tenant_id": "00000000-0000-0000-0000-000000000001",
    "client_id": "app-id",
    "client_secret": "s3cret-value",
    "domain": "pedro.example",
}
AD = {
    "url": "ldaps://dc.pedro.example",
    "bind_user": "svc-jit@pedro.example",
    "bind_password": "bind-secret",
    "base_dn": "DC=pedro,DC=example",
    "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}
PSA = {
    "kind": "connectwise",
    "base_url": "https://cw.example/v4_6_release/apis/3.0",
    "company_id": "msp",
    "public_key": "pub",
    "private_key": "priv",
    "client_id": "client",
}
CUSTOMER = {"slug": "newco", "name": "New Co", "psa_company_id": "NEWCO"}
GRANT_FIELDS = {
    "ticket_id": "101",
    "reason": "Fix the Conditional Access lockout",
    "customer": PEDRO.slug,
    "identity_provider": "m365",
    "password": "Correct-Horse-Battery-9",
}
Case = tuple[str, str, Body, str, str]


def replacing(base: dict[str, Any], field: str) -> Callable[[str], dict[str, Any]]:
    return lambda value: {**base, field: value}


def each_field(method: str, path: str, base: dict[str, Any], valid: dict[str, str]) -> list[Case]:
    """One case a field: ``base`` with that field hostile (``valid``: its harmless value)."""
    return [(method, path, replacing(base, f), f, good) for f, good in valid.items()]


M365_PATH = f"/customers/{PEDRO.slug}/connections/m365"
NEW_USER = {"username": "new.tech", "role": "technician"}
# (method, path, body for a hostile value, the field the 422 must name, a valid value)
API_CASES: list[Case] = [
    *each_field("POST", "/grants", grant_body(), GRANT_FIELDS),
    ("POST", "/grants/{v}/extend", lambda v: {"minutes": 30}, "grant_id", "grant-id"),
    ("POST", "/grants/{v}/revoke", lambda v: {}, "grant_id", "grant-id"),
    ("POST", "/grants/{grant}/password", lambda v: {"reason": v}, "reason", "Customer asked"),
    *each_field("POST", "/users", NEW_USER, NEW_USER),
    ("POST", "/users", lambda v: {**NEW_USER, "customers": [v]}, "customers", PEDRO.slug),
    *each_field("POST", "/customers", CUSTOMER, {**CUSTOMER, "domain_prefix": "newco"}),
    ("PUT", "/customers/{v}/connections/m365", lambda v: M365, "slug", PEDRO.slug),
    *each_field("PUT", M365_PATH, M365, {**M365, "graph_url": "https://graph.example"}),
    *each_field("PUT", f"/customers/{PEDRO.slug}/connections/ad", AD, {**AD, "ou": "OU=A"}),
    *each_field("PUT", "/psa", PSA, {f: v for f, v in PSA.items() if f != "kind"}),
    ("POST", "/customers/{v}/connections/m365/test", lambda v: {}, "slug", PEDRO.slug),
    ("POST", "/tokens", lambda v: {"username": v}, "username", "admin"),
]


@pytest.fixture
def active_grant(system: System) -> str:
    with system.client() as api:
        created = api.post("/grants", json=grant_body(ticket_id=str(PEDRO.open_ticket_ids[0])))
    assert created.status_code == 202, created.text
    grant_id = str(created.json()["id"])
    system.wait_state(grant_id, "active")
    wait_for(lambda: outbox_drained(system, grant_id), what="grant note sent")
    return grant_id


@pytest.mark.parametrize("rule", ["long", "nul"])
def test_api_refuses_oversized_and_control_text_with_422_and_writes_nothing(
    system: System, active_grant: str, rule: str
) -> None:
    before = written(system)
    with system.client("admin") as api:
        for method, template, body, field, valid in API_CASES:
            value = hostile(rule, valid, field)
            path = template.replace("{v}", quote(value, safe="")).replace("{grant}", active_grant)
            response = api.request(method, path, json=body(value))
            case = f"{method} {template} {field}={rule}"
            answer = f"{case}: {response.status_code} {response.text[:300]}"
            assert response.status_code == 422, answer
            problem = response.json()
            assert response.headers["content-type"].startswith("application/problem+json")
            named = [e["field"] for e in problem["errors"]]
            assert any(n == field or n.startswith(f"{field}.") for n in named), (case, problem)
            rules = " ".join(e["rule"] for e in problem["errors"])
            assert ("at most" in rules) if rule == "long" else ("control" in rules), case
            assert written(system) == before, f"{case} wrote something"


FORM_GRANT = {k: str(v) for k, v in grant_body().items()}
WebCase = tuple[str, Callable[[str], dict[str, str]], str]


def each_form_field(path: str, base: dict[str, str], valid: dict[str, str]) -> list[WebCase]:
    return [(path, replacing(base, f), good) for f, good in valid.items()]


# (path, form fields for a hostile value, a valid value)
WEB_CASES: list[WebCase] = [
    *each_form_field("/request", FORM_GRANT, {"ticket_id": "101", "reason": "Fix the lockout"}),
    *each_form_field("/admin/customers", {**CUSTOMER, "domain_prefix": ""}, CUSTOMER),
    ("/admin/users", lambda v: {"username": v, "role": "technician"}, "new.tech"),
    *each_form_field(f"/admin{M365_PATH}", M365, M365),
    ("/admin/psa", lambda v: {**PSA, "company_id": v}, "msp"),
    ("/grants/{grant}/reveal", lambda v: {"reveal_reason": v, "confirm": "yes"}, "Asked by"),
    ("/grants/{v}/revoke", lambda v: {}, "grant-id"),
]


@pytest.mark.parametrize("rule", ["long", "nul"])
def test_web_forms_refuse_oversized_and_control_text_and_write_nothing(
    system: System, active_grant: str, rule: str
) -> None:
    root = add_admin(system, "limits.admin")
    session = sign_in(system, root)
    before = written(system)
    with session.client(system) as web:
        for template, fields, valid in WEB_CASES:
            value = hostile(rule, valid)
            path = template.replace("{v}", quote(value, safe="")).replace("{grant}", active_grant)
            response = web.post(path, data=session.form(**fields(value)))
            case = f"POST {template} {rule}"
            assert response.status_code == 422, f"{case}: {response.status_code}"
            assert (
                ("at most" in response.text) if rule == "long" else ("control" in response.text)
            ), case
            assert written(system) == before, f"{case} wrote something"
