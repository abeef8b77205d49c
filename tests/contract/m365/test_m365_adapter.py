"""M365IdentityProvider against the Graph emulator over real HTTP, with real MSAL.

Outcomes are checked in the emulator's state or through its Graph API with a token of our own
(the shared pieces: ``m365_harness``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from jitadmin.adapters.m365.client import GraphClient
from jitadmin.adapters.m365.provider import M365Connection, M365IdentityProvider
from jitadmin.core import naming
from jitadmin.core.errors import (
    AdapterError,
    AlreadyExistsError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)
from jitadmin.ports import RevokeSpec

from support.config import TEST_EGRESS
from support.faults import HELD_MS
from support.m365 import (
    CUSTOMER,
    GA,
    OTHER,
    REQUESTER,
    TENANT,
    CrashError,
    Emulator,
    ProviderFactory,
    Recorder,
    StaticTokens,
    access,
    assert_granted,
    provider_factory,
    reset,
    resume,
    revoke_spec,
    serve_emulator,
    wait_until,
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


# --- happy paths and idempotency --------------------------------------------------------


def test_planned_username_uses_the_initial_domain(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    grant_id = str(uuid.uuid4())
    assert provider.planned_username(grant_id, REQUESTER) == naming.m365_user_principal_name(
        REQUESTER, grant_id, CUSTOMER.domain
    )


def test_check_reports_what_it_saw(make_provider: ProviderFactory) -> None:
    findings = make_provider().check()
    assert findings[0] == "token acquired"
    assert f"initial domain {CUSTOMER.domain}" in findings
    assert any("role assignments readable" in f for f in findings)


def test_grant_creates_a_tagged_global_admin(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    spec, record = access(), Recorder()
    result = make_provider().grant(spec, record)
    user_id = assert_granted(emulator, spec, result)
    assert record.steps == ["user_created", "role_assigned", "verified_granted"]
    assert record.account == result.account
    # When the role was assigned: a revoke soon after treats a 404 for it as "not yet".
    assigned_at = datetime.fromisoformat(result.account["assigned_at"])
    assert abs(datetime.now(UTC) - assigned_at) < timedelta(minutes=1)
    listed = emulator.graph_get(
        "/roleManagement/directory/roleAssignments", {"$filter": f"principalId eq '{user_id}'"}
    )["value"]
    assert [(a["roleDefinitionId"], a["directoryScopeId"]) for a in listed] == [(GA, "/")]


def test_grant_again_with_the_recorded_account_adopts_it(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    provider, spec, record = make_provider(), access(), Recorder()
    first = provider.grant(spec, record)
    again = Recorder(account=dict(record.account))
    second = provider.grant(resume(spec, record.account), again)
    assert second == first
    assert again.steps == ["verified_granted"]
    assert emulator.statuses("POST", "/v1.0/users") == [201]
    assert_granted(emulator, spec, second)


@pytest.mark.parametrize("committed", [True, False], ids=["recorded", "not-recorded"])
def test_grant_after_a_crash_once_the_user_exists(
    emulator: Emulator, make_provider: ProviderFactory, committed: bool
) -> None:
    provider, spec = make_provider(), access()
    crashed = Recorder(crash_on="user_created", crash_before_commit=not committed)
    with pytest.raises(CrashError):
        provider.grant(spec, crashed)
    assert len(emulator.users_of(spec.grant_id)) == 1
    assert crashed.account.keys() == ({"user_id", "upn"} if committed else set())

    resumed = Recorder(account=dict(crashed.account))
    result = provider.grant(resume(spec, crashed.account), resumed)
    assert_granted(emulator, spec, result)
    assert emulator.statuses("POST", "/v1.0/users") == [201]
    assert "role_assigned" in resumed.steps


def test_revoke_removes_deletes_and_purges(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    provider, spec, record = make_provider(), access(), Recorder()
    result = provider.grant(spec, record)
    user_id = result.account["user_id"]
    steps_before = len(record.steps)
    provider.revoke(revoke_spec(spec, record.account, result.username), record)

    assert record.steps[steps_before:] == [
        "role_removed",
        "user_disabled",
        "sessions_revoked",
        "user_deleted",
        "deleted_seen",  # positive evidence, noted before the purge
        "user_purged",
        "verified_revoked",
    ]
    assert user_id not in emulator.ga_holders()
    assert emulator.state.find_user(TENANT, user_id) is None
    assert all(u.id != user_id for u in emulator.state.deleted_users(TENANT))
    upn_filter = {"$filter": f"userPrincipalName eq '{result.username}'"}
    assert emulator.graph_get("/users", upn_filter)["value"] == []
    deleted = emulator.graph_get("/directory/deletedItems/microsoft.graph.user")["value"]
    assert not [d for d in deleted if str(d["userPrincipalName"]).endswith(result.username)]


def test_revoke_twice_is_fine(emulator: Emulator, make_provider: ProviderFactory) -> None:
    provider, spec, record = make_provider(), access(), Recorder()
    result = provider.grant(spec, record)
    provider.revoke(revoke_spec(spec, record.account, result.username), record)
    again = Recorder(account=dict(record.account))
    provider.revoke(revoke_spec(spec, record.account, result.username), again)
    assert again.steps[-1] == "verified_revoked"
    assert emulator.users_of(spec.grant_id) == []


def test_revoke_when_nothing_was_created(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    spec, record = access(), Recorder()
    make_provider().revoke(revoke_spec(spec, {}, None), record)
    assert record.steps == ["verified_revoked"]
    assert not [
        e
        for e in emulator.journal()
        if e["method"] in {"DELETE", "PATCH", "POST"} and e["path"].startswith("/v1.0")
    ]


def test_revoke_finds_an_unrecorded_account_by_upn(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    provider, spec = make_provider(), access()
    with pytest.raises(CrashError):
        provider.grant(spec, Recorder(crash_on="user_created", crash_before_commit=True))
    record = Recorder()
    provider.revoke(revoke_spec(spec, {}, None), record)
    assert record.steps[0] == "user_found"
    assert record.steps[-1] == "verified_revoked"
    assert emulator.users_of(spec.grant_id) == []


# --- never touch accounts jitadmin does not manage --------------------------------------


def test_foreign_admin_is_never_adopted_or_touched(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    provider, spec = make_provider(), access()
    admin = emulator.state.find_user(TENANT, f"admin@{CUSTOMER.domain}")
    assert admin is not None
    # A recorded object id is trusted whatever the account's tags say (issue 12 item 3: the
    # grantee can rewrite them); the ledger itself is guarded by sealing, not by tags.
    # Found only by name, a foreign account means nothing of ours exists: done, untouched.
    recorder = Recorder()
    provider.revoke(revoke_spec(spec, {}, admin.upn), recorder)
    assert recorder.steps == ["verified_revoked"]
    still = emulator.state.find_user(TENANT, admin.id)
    assert still is not None
    assert still.props["accountEnabled"] is True
    assert admin.id in emulator.ga_holders()


@pytest.mark.parametrize(
    ("display", "tag"),
    [("Customer Person", None), ("jitadmin temporary admin (grant other)", "jitadmin")],
    ids=["untagged", "other-grant"],
)
def test_upn_collision_is_refused(
    emulator: Emulator, make_provider: ProviderFactory, display: str, tag: str | None
) -> None:
    provider, spec = make_provider(), access()
    upn = provider.planned_username(spec.grant_id, spec.requester)
    other = emulator.state.add_user(TENANT, upn, display_name=display, employee_type=tag)
    with pytest.raises(AlreadyExistsError, match="does not manage"):
        provider.grant(spec, Recorder())
    assert other not in emulator.ga_holders()
    assert emulator.statuses("POST", "/v1.0/roleManagement") == []


# --- input and credential failures ------------------------------------------------------


def test_weak_password_is_rejected(emulator: Emulator, make_provider: ProviderFactory) -> None:
    spec = access(password="onlylowercaseletters")
    with pytest.raises(RejectedError) as caught:
        make_provider().grant(spec, Recorder())
    assert "complexity" in str(caught.value)
    assert spec.password not in str(caught.value)
    assert emulator.users_of(spec.grant_id) == []


def test_bad_client_secret_is_misconfiguration(make_provider: ProviderFactory) -> None:
    secret = "Wrong~Secret~Value~" + uuid.uuid4().hex
    with pytest.raises(MisconfiguredError) as caught:
        make_provider(secret=secret).grant(access(), Recorder())
    text = str(caught.value)
    assert "client secret is wrong" in text
    assert caught.value.vendor_code == "AADSTS7000215"
    assert secret not in text
    assert secret not in repr(caught.value)


@pytest.mark.parametrize(
    ("consented", "expired", "advice", "code"),
    [
        (False, False, "admin consent", "AADSTS700016"),
        (True, True, "expired", "AADSTS7000222"),
    ],
    ids=["not-consented", "secret-expired"],
)
def test_tenant_side_credential_problems(
    emulator: Emulator,
    make_provider: ProviderFactory,
    consented: bool,
    expired: bool,
    advice: str,
    code: str,
) -> None:
    emulator.state.set_app(OTHER.tenant_id, consented=consented, secret_expired=expired)
    try:
        with pytest.raises(MisconfiguredError, match=advice) as caught:
            make_provider(tenant_id=OTHER.tenant_id).check()
        assert caught.value.vendor_code == code
    finally:
        emulator.state.set_app(OTHER.tenant_id, consented=True, secret_expired=False)


def test_unknown_tenant(make_provider: ProviderFactory) -> None:
    with pytest.raises(MisconfiguredError, match="not found") as caught:
        make_provider(tenant_id=str(uuid.uuid4())).check()
    assert caught.value.vendor_code == "AADSTS90002"


def test_plain_http_authority_must_be_loopback() -> None:
    connection = M365Connection(
        tenant_id=TENANT,
        client_id="app",
        client_secret="s3cret-value",
        authority_url="http://login.example.net",
    )
    assert "s3cret-value" not in repr(connection)
    with pytest.raises(MisconfiguredError, match="loopback"):
        M365IdentityProvider(connection)


def test_expired_token_is_replaced_once(emulator: Emulator, make_provider: ProviderFactory) -> None:
    provider = make_provider()
    provider.check()
    emulator.admin.delete("/_admin/tokens").raise_for_status()
    spec = access()
    assert_granted(emulator, spec, provider.grant(spec, Recorder()))
    assert 401 in emulator.statuses("GET", "/v1.0/")
    assert len(emulator.statuses("POST", "/oauth2/v2.0/token")) == 2


# --- fault switches ---------------------------------------------------------------------


def test_throttling_honours_retry_after(emulator: Emulator, make_provider: ProviderFactory) -> None:
    sleeps: list[float] = []
    provider = make_provider(sleeps=sleeps, budget_s=5.0)
    emulator.faults(error_status=429, retry_after_s=1, error_count=2, match="/v1.0/")
    spec = access()
    assert_granted(emulator, spec, provider.grant(spec, Recorder()))
    assert [s for s in emulator.statuses("GET", "/v1.0/") if s == 429] == [429, 429]
    assert sum(1 for s in sleeps if s >= 1.0) == 2, "waited as long as Retry-After asked"


def test_permanent_throttling_hands_retry_after_to_the_worker(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    provider = make_provider()
    emulator.faults(error_status=429, retry_after_s=30, match="/v1.0/")
    with pytest.raises(TransientError) as caught:
        provider.grant(access(), Recorder())
    assert caught.value.retry_after_s == 30
    assert caught.value.vendor_code == "TooManyRequests"


def test_a_429_holds_back_every_call_to_that_tenant(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """Retry-After is the tenant's, not the call's: a parallel revocation that was not itself
    throttled must not send anything until it has elapsed."""
    provider = make_provider(budget_s=5.0)
    emulator.faults(error_status=429, retry_after_s=30, error_count=1, match="/v1.0/")
    with pytest.raises(TransientError):
        provider.grant(access(), Recorder())  # throttled once; 30 s is beyond its budget
    sent = len(emulator.statuses("GET", "/v1.0/")) + len(emulator.statuses("POST", "/v1.0/"))
    with pytest.raises(TransientError) as caught:
        provider.grant(access(), Recorder())  # the emulator would answer now; we must not ask
    after = len(emulator.statuses("GET", "/v1.0/")) + len(emulator.statuses("POST", "/v1.0/"))
    assert after == sent, "no request while the tenant's Retry-After runs"
    assert caught.value.retry_after_s is not None and 25 < caught.value.retry_after_s <= 30


def test_server_errors_are_retried_for_reads(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    emulator.faults(error_status=502, error_count=2, match="GET /v1.0/")
    assert make_provider().check()[0] == "token acquired"
    assert emulator.statuses("GET", "/v1.0/domains")[:3] == [502, 502, 200]


def test_server_error_on_create_rereads_before_creating_again(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    emulator.faults(error_status=500, error_count=1, match="POST /v1.0/users")
    spec = access()
    assert_granted(emulator, spec, make_provider().grant(spec, Recorder()))
    assert emulator.statuses("POST", "/v1.0/users") == [500, 201]


def test_denied_delete_right_after_role_removal_is_retried(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    provider, spec, record = make_provider(), access(), Recorder()
    result = provider.grant(spec, record)
    emulator.faults(error_status=403, error_count=2, match="DELETE /v1.0/users/")
    provider.revoke(revoke_spec(spec, record.account, result.username), record)
    assert emulator.statuses("DELETE", "/v1.0/users/")[:3] == [403, 403, 204]
    assert record.steps[-1] == "verified_revoked"
    assert emulator.users_of(spec.grant_id) == []


def test_permanent_server_errors_become_transient(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    provider = make_provider(budget_s=0.5)
    provider.check()
    emulator.faults(error_status=503, match="/v1.0/")
    with pytest.raises(TransientError) as caught:
        provider.grant(access(), Recorder())
    assert caught.value.vendor_code == "serviceNotAvailable"


@pytest.mark.parametrize("warm", [True, False], ids=["token-cached", "no-token-yet"])
def test_outage_is_transient(
    emulator: Emulator, make_provider: ProviderFactory, warm: bool
) -> None:
    provider = make_provider(budget_s=0.5)
    if warm:
        provider.check()
    emulator.faults(outage=True)
    with pytest.raises(TransientError):
        provider.grant(access(), Recorder())
    with pytest.raises(TransientError):
        provider.revoke(RevokeSpec(str(uuid.uuid4()), REQUESTER, None), Recorder())


def test_slow_graph_is_seen_in_flight(emulator: Emulator, make_provider: ProviderFactory) -> None:
    provider = make_provider(timeout_s=30)
    emulator.faults(latency_ms=HELD_MS, match="GET /v1.0/domains")
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(provider.check()))
    worker.start()
    in_flight = wait_until(
        lambda: any(
            e["path"] == "/v1.0/domains" and e["status"] is None for e in emulator.journal()
        ),
        timeout_s=20,
    )
    emulator.admin.delete("/_admin/faults").raise_for_status()
    worker.join(timeout=30)
    assert in_flight, "the journal showed the slow call while it was running"
    assert outcome and outcome[0][0] == "token acquired"


def test_grant_and_revoke_converge_under_replication_delay(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    provider = make_provider(budget_s=10.0, backoff_cap_s=0.2, max_attempts=200)
    emulator.faults(replication_delay_ms=400)
    spec, record = access(), Recorder()
    result = provider.grant(spec, record)
    assert_granted(emulator, spec, result)
    assert 404 in emulator.statuses("POST", "/roleManagement/directory/roleAssignments")
    provider.revoke(revoke_spec(spec, record.account, result.username), record)
    assert record.steps[-1] == "verified_revoked"
    assert emulator.users_of(spec.grant_id) == []
    assert result.account["user_id"] not in emulator.ga_holders()


def test_no_secret_in_errors_or_logs(
    emulator: Emulator, make_provider: ProviderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = emulator.creds.graph_client_secret
    bad_secret = "Another~Wrong~Secret~" + uuid.uuid4().hex
    errors: list[AdapterError] = []
    spec = access()
    result = make_provider().grant(spec, Recorder())
    for attempt in (
        lambda: make_provider(secret=bad_secret).check(),
        lambda: make_provider().grant(access(password="weakweakweakweak"), Recorder()),
    ):
        with pytest.raises(AdapterError) as caught:
            attempt()
        errors.append(caught.value)
    emulator.faults(outage=True)
    with pytest.raises(AdapterError) as outage:
        make_provider().grant(resume(spec, result.account), Recorder())
    errors.append(outage.value)
    for value in (secret, bad_secret, spec.password, "weakweakweakweak"):
        assert all(value not in f"{e} {e!r}" for e in errors)
        assert value not in caplog.text
    assert "Bearer " not in caplog.text


# --- the client on its own --------------------------------------------------------------


def test_next_link_to_another_host_is_refused() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "value": [{"id": "1"}],
                "@odata.nextLink": "https://graph.evil.example/v1.0/users?$skiptoken=x",
            },
        )

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = GraphClient("https://graph.microsoft.com/v1.0", StaticTokens(), http=http)
    with pytest.raises(MisconfiguredError, match="another origin"):
        client.list_all("/users")
    assert [r.url.host for r in seen] == ["graph.microsoft.com"]
    assert seen[0].headers["client-request-id"]
    assert seen[0].headers["Authorization"] == "Bearer static-token"


def test_paging_follows_same_origin_next_links(emulator: Emulator) -> None:
    client = GraphClient.connect(
        TENANT,
        emulator.creds.graph_client_id,
        emulator.creds.graph_client_secret,
        authority_url=f"{emulator.url}/login",
        graph_url=f"{emulator.url}/v1.0",
        egress=TEST_EGRESS,
    )
    try:
        users = client.list_all("/users", {"$top": "1", "$select": "id"})
    finally:
        client.close()
    assert len(users) == len(emulator.state.tenant(TENANT).users) >= 1
    assert any("$skiptoken" in e["query"] or "skiptoken" in e["query"] for e in emulator.journal())


def test_two_404s_alone_are_not_verified(
    emulator: Emulator, make_provider: ProviderFactory
) -> None:
    """An object absent from /users and /directory/deletedItems (another
    tenant, a lagging replica) is not proof of a revocation; one positive observation is."""
    provider, spec = make_provider(), access()
    never_here = str(uuid.uuid4())
    recorder = Recorder()
    with pytest.raises(TransientError, match="not verified"):
        provider.revoke(revoke_spec(spec, {"user_id": never_here}, None), recorder)
    assert "verified_revoked" not in recorder.steps
