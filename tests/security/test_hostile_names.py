"""Hostile names: LDAP filter and DN escaping, OData quote doubling, account naming.

A requester or customer name is attacker-influenced text (an admin types it, a PSA returns
it). These names must never change the meaning of an LDAP filter, a DN or an OData filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from jitadmin.adapters.m365.directory import odata_quote
from jitadmin.core import naming

from support.system import System, start_system, stop_system

HOSTILE = (
    "a*)(|(cn=*",
    "*",
    "O'Neil",
    "x\\,y",
    "#foo",
    " leading space",
    "trailing space ",
    "plus+sign",
    "semi;colon",
    'quote"d',
    "angle<b>",
    "nul\x00byte",
    "newline\nname",
    "equals=sign",
    "x') or startswith(userPrincipalName,'",
    "ünïcödé",
    "a" * 300,
)
_FILTER_SPECIALS = re.compile(r"[*()\x00]")


@pytest.mark.parametrize("name", HOSTILE)
def test_ldap_filter_values_cannot_break_out(name: str) -> None:
    escaped = escape_filter_chars(name)
    # No raw filter metacharacter survives; backslashes only start \XX escapes.
    assert not _FILTER_SPECIALS.search(escaped)
    assert re.fullmatch(r"(?:[^\\]|\\[0-9a-f]{2})*", escaped), escaped
    ldap_filter = f"(sAMAccountName={escaped})"
    assert ldap_filter.count("(") == 1 and ldap_filter.count(")") == 1


@pytest.mark.parametrize("name", [n for n in HOSTILE if "\x00" not in n])
def test_dn_components_stay_one_rdn(name: str) -> None:
    dn = f"CN={escape_rdn(name)},CN=Users,DC=corp,DC=example"
    parts = parse_dn(dn, escape=False)
    assert len(parts) == 4, dn
    assert parts[0][0] == "CN" and parts[1:] == [
        ("CN", "Users", ","),
        ("DC", "corp", ","),
        ("DC", "example", ""),
    ]


@pytest.mark.parametrize("name", HOSTILE)
def test_account_names_are_plain(name: str) -> None:
    requester = f"{name}@msp.example"
    sam = naming.ad_sam_account_name(requester, name)
    full = naming.ad_account_name(requester, name)
    nickname = naming.m365_mail_nickname(requester, "0f0e0d0c-0000-0000-0000-000000000000")
    assert re.fullmatch(r"[a-z0-9._-]{1,20}", sam), sam
    assert re.fullmatch(r"[a-z0-9._-]+", full), full
    assert re.fullmatch(r"jit-[a-z0-9._-]+-[0-9a-f]{6}", nickname) and len(nickname) <= 64
    assert naming.ad_sam_account_name(requester, name) == sam  # stable


@pytest.mark.parametrize("name", HOSTILE)
def test_odata_literals_double_quotes(name: str) -> None:
    literal = odata_quote(name)
    inner = literal[1:-1]
    assert literal.startswith("'") and literal.endswith("'")
    # Every quote inside is doubled, so the literal cannot end early.
    assert "'" not in inner.replace("''", "")


@pytest.fixture(scope="module")
def graph_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    tmp: Path = tmp_path_factory.mktemp("hostile")
    system = start_system(tmp, with_worker=False)
    yield system
    stop_system(system)


@pytest.mark.parametrize("local", ["o'neil", "x''or'1'eq'1", "a'b''c"])
def test_odata_filter_with_quotes_against_the_graph_emulator(
    graph_system: System, local: str
) -> None:
    customer = graph_system.world.customers[0]
    domain = graph_system.world.graph_settings(customer)["domain"]
    with graph_system.graph(customer.tenant_id) as graph:
        upn = f"{local}@{domain}"
        created = graph.post(
            "/users",
            json={"accountEnabled": False, "displayName": local, "mailNickname": "hostile",
                  "userPrincipalName": upn,
                  "passwordProfile": {"password": "Xx1!" + "k" * 20,
                                      "forceChangePasswordNextSignIn": False}},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        found = graph.get("/users", params={"$filter": f"userPrincipalName eq {odata_quote(upn)}"})
        assert found.status_code == 200, found.text
        assert [u["userPrincipalName"] for u in found.json()["value"]] == [upn]
        # The same value unquoted is not a valid filter: the doubling is what makes it work.
        raw = graph.get("/users", params={"$filter": f"userPrincipalName eq '{upn}'"})
        assert raw.status_code == 400 or upn not in [
            u["userPrincipalName"] for u in raw.json().get("value", [])
        ]


def test_hostile_customer_slugs_are_refused(graph_system: System) -> None:
    with graph_system.client("admin") as api:
        for slug in ("a*)(|(cn=*", "O'Neil", "x\\,y", "#foo", "nul\x00", "../etc"):
            response = api.post(
                "/customers", json={"slug": slug, "name": slug, "psa_company_id": 1}
            )
            assert response.status_code == 422, (slug, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{graph_system.url}/healthz", timeout=10).status_code == 200
