"""The M365 adapter copes with what real Microsoft Graph does and the emulator now shows by
default: advanced-query-only filters, replication lag of deleted items and new role
assignments, concurrency conflicts, consent still replicating, the ``graph.`` cast alias.

Each test names the Microsoft page that documents the behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jitadmin.adapters.m365.client import GraphClient
from jitadmin.adapters.m365.connector import SPEC as M365_SPEC
from jitadmin.adapters.m365.directory import display_name
from jitadmin.adapters.m365.errors import GraphConflictError
from jitadmin.adapters.m365.provider import M365Connection, M365IdentityProvider
from jitadmin.core.errors import AdapterError, MisconfiguredError, TransientError

from support.config import TEST_EGRESS
from support.m365 import (
    CUSTOMER,
    FAST,
    GA,
    OTHER,
    TENANT,
    CrashError,
    Emulator,
    ProviderFactory,
    Recorder,
    StaticTokens,
    access,
    provider_factory,
    reset,
    revoke_spec,
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


# --- deleted items lag ------------------------------------------------------------------


def test_revoke_waits_for_the_deleted_item_before_purging(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """Right after ``DELETE /users/{id}`` the object may be missing from deletedItems (404 on
    read and purge; https://learn.microsoft.com/graph/api/directory-deleteditems-delete). The
    revoke polls until it sees the deleted item, then purges: the emulator lags by default."""
    provider, spec, record = make_provider(), access(), Recorder()
    result = provider.grant(spec, record)
    user_id = result.account["user_id"]
    provider.revoke(revoke_spec(spec, record.account, result.username), record)
    assert record.steps[-3:] == ["deleted_seen", "user_purged", "verified_revoked"]
    reads = emulator.statuses("GET", f"/v1.0/directory/deletedItems/{user_id}")
    assert reads[0] == 404 and reads[-1] == 200, "a 404 first, then the deleted item"
    assert emulator.statuses("DELETE", f"/v1.0/directory/deletedItems/{user_id}") == [204]
    assert all(u.id != user_id for u in emulator.state.deleted_users(TENANT))


def test_a_purge_404_during_the_lag_is_not_taken_for_purged(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """A 404 from deletedItems right after the delete means "not yet": the revoke stays
    unverified (the account is restorable for 30 days) until the item is seen and purged."""
    provider, spec, record = make_provider(), access(), Recorder()
    result = provider.grant(spec, record)
    emulator.faults(deleted_lag_requests=10_000)  # the recycle bin does not catch up in time
    with pytest.raises(TransientError, match="not verified"):
        provider.revoke(revoke_spec(spec, record.account, result.username), record)
    assert "user_purged" not in record.steps and "verified_revoked" not in record.steps
    assert any(u.id == result.account["user_id"] for u in emulator.state.deleted_users(TENANT))
    emulator.faults(deleted_lag_requests=0)
    provider.revoke(revoke_spec(spec, record.account, result.username), record)
    assert record.steps[-2:] == ["user_purged", "verified_revoked"]
    assert all(u.id != result.account["user_id"] for u in emulator.state.deleted_users(TENANT))


# --- new role assignments lag -----------------------------------------------------------


def test_revoke_soon_after_grant_does_not_take_a_404_for_removed(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """A just-created assignment can be invisible to GET by id and to the principal list for a
    while (https://learn.microsoft.com/graph/api/unifiedroleassignment-get; Terraform's azuread
    provider waits up to 5 minutes). A revoke then must not record ``role_removed`` while the
    assignment still exists: it deletes by the stored id, and a 404 is "not yet"."""
    provider, spec = make_provider(), access()
    crashed = Recorder(crash_on="role_assigned")  # the worker died right after the POST
    with pytest.raises(CrashError):
        provider.grant(spec, crashed)
    assert "assigned_at" in crashed.account
    emulator.faults(assignment_lag_requests=10_000)  # the replicas do not catch up in time
    record = Recorder(account=dict(crashed.account))
    revoke = revoke_spec(spec, crashed.account, crashed.account["upn"])
    with pytest.raises(TransientError, match="not visible yet"):
        provider.revoke(revoke, record)
    assert "role_removed" not in record.steps
    user_id = crashed.account["user_id"]
    assert user_id in emulator.ga_holders(), "still assigned: nothing was claimed"

    emulator.faults(assignment_lag_requests=0)
    provider.revoke(revoke, record)
    assert record.steps[-1] == "verified_revoked"
    stored = crashed.account["assignment_id"]
    assert 204 in emulator.statuses("DELETE", f"/roleManagement/directory/roleAssignments/{stored}")
    assert user_id not in emulator.ga_holders()


def test_an_old_grant_whose_stored_assignment_is_gone_goes_on(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """Once the grant is no longer young, a 404 for the stored assignment means it is gone
    (removed by hand, say): the revoke does not wait for it."""
    provider, spec, record = make_provider(), access(), Recorder()
    result = provider.grant(spec, record)
    stored = result.account["assignment_id"]
    token = emulator.state.issue_token(TENANT)
    emulator.admin.delete(
        f"/v1.0/roleManagement/directory/roleAssignments/{stored}",
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()
    old = {**record.account, "assigned_at": "2026-01-01T00:00:00+00:00"}
    provider.revoke(revoke_spec(spec, old, result.username), record)
    assert record.steps[-1] == "verified_revoked"


def test_the_403_right_after_role_removal_is_retried_by_default(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """Entra keeps treating a just-demoted user as an administrator for a moment, longer than
    the assignment stays listed: disabling or deleting it answers 403
    (https://learn.microsoft.com/graph/api/user-delete). The emulator does it by default and
    the revoke retries through it."""
    provider, spec, record = make_provider(), access(), Recorder()
    result = provider.grant(spec, record)
    user_id = result.account["user_id"]
    provider.revoke(revoke_spec(spec, record.account, result.username), record)
    assert record.steps[-1] == "verified_revoked"
    writes = emulator.statuses("PATCH", f"/v1.0/users/{user_id}") + emulator.statuses(
        "DELETE", f"/v1.0/users/{user_id}"
    )
    assert 403 in writes, "the replication window after the removal was met"
    assert emulator.state.find_user(TENANT, user_id) is None


# --- 409 Directory_ConcurrencyViolation -------------------------------------------------


def test_a_concurrency_violation_is_retried(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """409 ``Directory_ConcurrencyViolation`` means "retry after a short delay", not "already
    exists" (https://learn.microsoft.com/graph/errors): the grant goes through."""
    emulator.faults(
        error_status=409, error_count=2, match="POST /v1.0/roleManagement/directory/roleAssignments"
    )
    spec, record = access(), Recorder()
    result = make_provider().grant(spec, record)
    assert record.steps[-1] == "verified_granted"
    assert result.account["user_id"] in emulator.ga_holders()
    posts = emulator.statuses("POST", "/v1.0/roleManagement/directory/roleAssignments")
    assert posts == [409, 409, 201]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("Directory_ConcurrencyViolation", TransientError),
        ("Request_Conflict", GraphConflictError),
        (None, GraphConflictError),
    ],
)
def test_a_409_is_classified_by_its_error_code(
    code: str | None, expected: type[AdapterError]
) -> None:
    """Only the concurrency code is transient; any other 409 keeps meaning "conflict"."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        error = {"message": "no"} | ({"code": code} if code else {})
        return httpx.Response(409, json={"error": error})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = GraphClient(
        "https://graph.microsoft.com/v1.0", StaticTokens(), http=http,
        max_attempts=3, sleep=lambda _s: None,
    )  # fmt: skip
    with pytest.raises(expected) as caught:
        client.post("/users", {"displayName": "x"})
    assert caught.value.vendor_code == code
    assert len(seen) == (3 if expected is TransientError else 1)


# --- 401 Authorization_IdentityNotFound -------------------------------------------------


def test_a_consent_still_replicating_is_waited_out(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """401 ``Authorization_IdentityNotFound`` right after admin consent
    (https://learn.microsoft.com/graph/errors) is retried while the connection is new."""
    emulator.state.set_app(OTHER.tenant_id, identity_pending_requests=3)
    try:
        findings = make_provider(tenant_id=OTHER.tenant_id).check()
    finally:
        emulator.state.set_app(OTHER.tenant_id, identity_pending_requests=0)
    assert findings[0] == "token acquired"
    assert emulator.statuses("GET", "/v1.0/domains")[:3] == [401, 401, 401]
    assert emulator.statuses("GET", "/v1.0/domains")[-1] == 200


@pytest.mark.parametrize(
    ("age_s", "expected"), [(10.0, TransientError), (3600.0, MisconfiguredError)]
)
def test_identity_not_found_says_consent_is_not_effective_yet(
    age_s: float, expected: type[AdapterError]
) -> None:
    """Its own message naming the tenant; transient for a bounded time after the connection
    is made, then a configuration problem (consent missing or revoked)."""
    clock = [1000.0]

    def handler(_request: httpx.Request) -> httpx.Response:
        message = "The identity of the calling application could not be established."
        return httpx.Response(
            401, json={"error": {"code": "Authorization_IdentityNotFound", "message": message}}
        )

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = GraphClient(
        "https://graph.microsoft.com/v1.0", StaticTokens(), http=http, max_attempts=3,
        sleep=lambda _s: None, monotonic=lambda: clock[0], tenant_label="contoso.example",
        consent_grace_s=900.0,
    )  # fmt: skip
    clock[0] += age_s
    with pytest.raises(expected) as caught:
        client.get("/domains")
    assert "consent not yet effective in tenant contoso.example" in str(caught.value)
    assert caught.value.vendor_code == "Authorization_IdentityNotFound"


# --- domains ------------------------------------------------------------------------------


def test_a_federated_domain_is_refused_before_anything_is_created(emulator: Emulator) -> None:
    """A federated domain cannot hold a cloud account with a password (its users sign in at
    the customer's identity provider; https://learn.microsoft.com/graph/api/user-post-users):
    the connection test refuses it, and so does a grant, before creating anything."""
    connection = M365Connection(
        tenant_id=TENANT,
        client_id=emulator.creds.graph_client_id,
        client_secret=emulator.creds.graph_client_secret,
        authority_url=f"{emulator.url}/login",
        graph_url=f"{emulator.url}/v1.0",
        domain=f"sso.{CUSTOMER.slug}.example",
    )
    timing: dict[str, Any] = dict(FAST)
    provider = M365IdentityProvider(connection, egress=TEST_EGRESS, **timing)
    try:
        with pytest.raises(MisconfiguredError, match="is federated"):
            provider.check()
        with pytest.raises(MisconfiguredError, match="is federated"):
            provider.grant(access(), Recorder())
    finally:
        provider.close()
    assert emulator.statuses("POST", "/v1.0/users") == []


def test_a_domain_longer_than_48_characters_is_refused_at_configuration() -> None:
    """The part of a UPN after "@" is at most 48 characters
    (https://learn.microsoft.com/entra/identity/authentication/concept-sspr-policy): the
    connection settings are refused, naming the field."""
    settings = {"tenant_id": CUSTOMER.domain, "client_id": "app", "client_secret": "s"}
    assert M365_SPEC.check({**settings, "domain": "d" * 40 + ".example"}) == []
    problems = M365_SPEC.check({**settings, "domain": "d" * 41 + ".example"})
    assert [field for field, _ in problems] == ["domain"]
    assert "48" in problems[0][1]
