"""The M365 adapter copes with what real Microsoft Graph does and the emulator now shows by
default: advanced-query-only filters, replication lag of deleted items and new role
assignments, concurrency conflicts, consent still replicating, the ``graph.`` cast alias.

Each test names the Microsoft page that documents the behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from jitadmin.adapters.m365.client import GraphClient
from jitadmin.adapters.m365.directory import display_name

from support.m365 import (
    CUSTOMER,
    GA,
    TENANT,
    Emulator,
    ProviderFactory,
    StaticTokens,
    access,
    provider_factory,
    reset,
    serve_emulator,
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator() as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_faults(emulator: Emulator) -> None:
    reset(emulator)


@pytest.fixture
def make_provider(emulator: Emulator) -> Iterator[ProviderFactory]:
    with provider_factory(emulator) as make:
        yield make


# --- advanced queries ---------------------------------------------------------------------


def test_managed_accounts_are_listed_with_an_advanced_query(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """``employeeType eq 'jitadmin'`` needs ``ConsistencyLevel: eventual`` and ``$count=true``
    (https://learn.microsoft.com/graph/aad-advanced-queries): the emulator refuses it without
    them, as Graph does, and the listing still finds a tagged admin and an untagged one."""
    grant_id = "drift-" + access().grant_id
    tagged = emulator.state.add_user(
        TENANT, f"tagged-{grant_id[:14]}@{CUSTOMER.domain}",
        display_name=display_name(grant_id), employee_type="jitadmin", roles=[GA],
    )  # fmt: skip
    untagged = emulator.state.add_user(TENANT, f"u-{grant_id[:14]}@{CUSTOMER.domain}", roles=[GA])
    token = emulator.state.issue_token(TENANT)
    plain = emulator.admin.get(
        "/v1.0/users",
        params={"$filter": "employeeType eq 'jitadmin'"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert plain.status_code == 400
    assert plain.json()["error"]["code"] == "Request_UnsupportedQuery"
    emulator.admin.delete("/_admin/requests").raise_for_status()

    found = {a.object_id: a for a in make_provider().list_managed()}
    assert found[tagged].tagged and found[tagged].holds_admin
    assert found[tagged].grant_id == grant_id
    assert not found[untagged].tagged and found[untagged].holds_admin
    listing = [e for e in emulator.journal() if e["path"] == "/v1.0/users"]
    assert listing and all("count=true" in e["query"] for e in listing)
    assert all(e["status"] == 200 for e in listing)


def test_request_headers_are_sent_again_on_every_next_link() -> None:
    """Graph does not carry ``ConsistencyLevel`` into ``@odata.nextLink``; the client must send
    it on every page (https://learn.microsoft.com/graph/paging)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "skiptoken" in str(request.url):
            return httpx.Response(200, json={"value": [{"id": "2"}]})
        link = "https://graph.microsoft.com/v1.0/users?$count=true&$skiptoken=x"
        return httpx.Response(200, json={"value": [{"id": "1"}], "@odata.nextLink": link})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = GraphClient("https://graph.microsoft.com/v1.0", StaticTokens(), http=http)
    items = client.list_all("/users", {"$count": "true"}, headers={"ConsistencyLevel": "eventual"})
    assert [i["id"] for i in items] == ["1", "2"]
    assert [r.headers.get("ConsistencyLevel") for r in seen] == ["eventual", "eventual"]
    assert all(r.headers["Authorization"] == "Bearer static-token" for r in seen)
