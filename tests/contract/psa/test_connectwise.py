"""ConnectWise: the emulator over real HTTP, then the adapter against it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from jitadmin.adapters.psa.connectwise.adapter import ConnectWiseTickets
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)
from jitadmin.emulators.psa.connectwise.app import (
    API_ROOT,
    ConnectWiseState,
    create_connectwise_app,
)
from jitadmin.emulators.runner import RunningServer, free_port, serve_in_thread
from jitadmin.emulators.seed import CUSTOMERS, SeedCredentials

from support.config import TEST_EGRESS
from support.faults import HELD_MS
from support.psa_harness import BIGCO, AdminSwitches, Sleeps
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]
NO_FLAGS_MESSAGE = "Please choose where to display the notes in order to save this record."


@dataclass
class World(AdminSwitches):
    server: RunningServer
    state: ConnectWiseState
    creds: SeedCredentials
    url: str  # the app root (companyinfo, /_admin)

    @property
    def admin_url(self) -> str:
        return f"{self.url}/_admin"

    @property
    def api(self) -> str:
        """The REST root, ending in /apis/3.0 (what the adapter is configured with)."""
        return self.url + API_ROOT

    def client(self, **overrides: Any) -> httpx.Client:
        """A vendor client authenticated as the seeded integration."""
        c = self.creds
        options: dict[str, Any] = {
            "auth": (f"{c.cw_company_id}+{c.cw_public_key}", c.cw_private_key),
            "headers": {"clientId": c.cw_client_id},
        }
        return httpx.Client(base_url=self.api + "/", **(options | overrides))

    def adapter(self, **overrides: Any) -> ConnectWiseTickets:
        c = self.creds
        args: dict[str, Any] = {
            "base_url": self.api,
            "company_id": c.cw_company_id,
            "public_key": c.cw_public_key,
            "private_key": c.cw_private_key,
            "client_id": c.cw_client_id,
            "sleep": Sleeps(),
            "egress": TEST_EGRESS,
        }
        return ConnectWiseTickets(**(args | overrides))

    def requests_to(self, method: str, path_end: str) -> list[dict[str, Any]]:
        return [e for e in self.journal() if e["method"] == method and e["path"].endswith(path_end)]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    creds = SeedCredentials()
    app, state = create_connectwise_app((*CUSTOMERS, BIGCO), creds)
    server = serve_in_thread(app)
    try:
        yield World(server=server, state=state, creds=creds, url=server.url)
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _clean_switches(world: World) -> Iterator[None]:
    yield
    world.reset()


def ids(items: list[dict[str, Any]]) -> list[int]:
    return [int(item["id"]) for item in items]


# --- the emulator, spoken to directly ---------------------------------------------------


def test_companyinfo_gives_codebase_without_auth(world: World) -> None:
    response = httpx.get(f"{world.url}/login/companyinfo/{world.creds.cw_company_id}")
    assert response.status_code == 200
    assert response.json()["Codebase"] == "v4_6_release/"
    assert httpx.get(f"{world.url}/login/companyinfo/nobody").status_code == 404


@pytest.mark.parametrize(
    "overrides",
    [
        {"auth": None},
        {"auth": ("mspdemo+wrong", "wrong")},
        {"headers": {}},  # no clientId
        {"headers": {"clientId": "00000000-0000-0000-0000-000000000000"}},
    ],
    ids=["no-auth", "bad-key", "no-client-id", "unknown-client-id"],
)
def test_api_rejects_bad_auth_with_401(world: World, overrides: dict[str, Any]) -> None:
    with world.client(**overrides) as client:
        response = client.get("service/tickets")
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "Unauthorized"
    assert body["message"]


def test_company_lookup_by_identifier_and_id(world: World) -> None:
    with world.client() as client:
        found = client.get("company/companies", params={"conditions": 'identifier="PedroAviary"'})
        one = client.get("company/companies/250", params={"fields": "id,name"})
        missing = client.get("company/companies/999")
    assert found.status_code == 200
    assert [(c["id"], c["name"]) for c in found.json()] == [(250, "Pedro Aviary")]
    assert one.json() == {"id": 250, "name": "Pedro Aviary"}
    assert missing.status_code == 404
    assert missing.json()["code"] == "NotFound"


def test_ticket_list_filters_sorts_and_projects(world: World) -> None:
    params = {
        "conditions": "company/id=250 and closedFlag=false",
        "orderBy": "id desc",
        "fields": "id,status/name,company/id",
    }
    with world.client() as client:
        response = client.get("service/tickets", params=params)
    assert response.status_code == 200
    tickets = response.json()
    assert ids(tickets) == sorted(map(int, PEDRO.open_ticket_ids), reverse=True)
    assert tickets[0] == {
        "id": 48213,
        "status": {"name": "Waiting on Client"},
        "company": {"id": 250},
    }


def test_paging_sends_link_headers_and_caps_page_size(world: World) -> None:
    params = {"conditions": "company/id=250", "orderBy": "id asc", "pageSize": "3"}
    with world.client() as client:
        first = client.get("service/tickets", params=params)
        second = client.get(first.links["next"]["url"])
        too_big = client.get("service/tickets", params={"pageSize": "1001"})
        largest = client.get("service/tickets", params={"pageSize": "1000"})
    assert len(first.json()) == 3
    assert first.links["last"]["url"] == first.links["next"]["url"]
    assert "page=2" in first.links["next"]["url"]
    assert len(second.json()) == 1  # 4 tickets of Pedro Aviary, 3 per page
    assert "next" not in second.links
    assert too_big.status_code == 400
    assert set(too_big.json()) == {"code", "message", "errors"}
    assert largest.status_code == 200


def test_search_and_count_share_the_conditions_grammar(world: World) -> None:
    with world.client() as client:
        search = client.post(
            "service/tickets/search",
            json={"conditions": '(company/id=251 or company/id=250) and summary like "*printer*"'},
        )
        count = client.get(
            "service/tickets/count",
            params={"conditions": 'status/name in ("New", "In Progress") and company/id != 250'},
        )
    assert ids(search.json()) == [48190]
    assert count.json() == {"count": 2}  # Northwind's 48301 and 48302


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ('summary contains "MAILBOX"', [48212]),  # case-insensitive
        ("not closedFlag=true and company/id=251", [48301, 48302]),
        ('company/identifier="northwind" and status/name not in ("New")', [48299, 48301]),
        ("id >= 48301", [48301, 48302]),
        ('closedFlag=False and company/id=250 and board/name="Help Desk"', [48211, 48212, 48213]),
    ],
)
def test_conditions_operators(world: World, conditions: str, expected: list[int]) -> None:
    with world.client() as client:
        response = client.get("service/tickets", params={"conditions": conditions})
    assert response.status_code == 200, response.text
    assert ids(response.json()) == expected


@pytest.mark.parametrize("conditions", ["nosuchfield=1", "company/id=", 'summary ~ "x"', "(id=1"])
def test_bad_conditions_are_400(world: World, conditions: str) -> None:
    with world.client() as client:
        response = client.get("service/tickets", params={"conditions": conditions})
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidRequest"


def test_unknown_ticket_is_404(world: World) -> None:
    with world.client() as client:
        assert client.get("service/tickets/1").status_code == 404
        assert client.get("service/tickets/1/notes").status_code == 404


def test_note_needs_a_display_flag(world: World) -> None:
    before = len(world.state.notes(48213))
    with world.client() as client:
        rejected = client.post(
            "service/tickets/48213/notes",
            json={"text": "no flag", "internalAnalysisFlag": False, "processNotifications": False},
        )
        created = client.post(
            "service/tickets/48213/notes",
            json={"text": "flagged [m-1]", "internalAnalysisFlag": True},
        )
        listed = client.get(
            "service/tickets/48213/notes", params={"conditions": 'text contains "m-1"'}
        )
    assert rejected.status_code == 400
    assert rejected.json() == {
        "code": "InvalidObject",
        "message": "serviceNote object is invalid",
        "errors": [
            {
                "code": "MissingRequiredField",
                "message": NO_FLAGS_MESSAGE,
                "resource": "serviceNote",
                "field": "detailDescriptionFlag",
            }
        ],
    }
    assert created.status_code == 201
    note = created.json()
    assert note["ticketId"] == 48213
    assert note["internalFlag"] is True
    assert note["externalFlag"] is False
    assert ids(listed.json()) == [note["id"]]
    assert len(world.state.notes(48213)) == before + 1


def test_fault_switches_merge_and_reset(world: World) -> None:
    world.faults(error_status=500)
    world.faults(retry_after_s=3)
    settings = httpx.put(f"{world.url}/_admin/faults", json={}).json()
    assert (settings["error_status"], settings["retry_after_s"]) == (500, 3)
    with world.client() as client:
        failed = client.get("service/tickets/48211")
    assert failed.status_code == 500
    assert failed.headers["Retry-After"] == "3"
    assert set(failed.json()) == {"code", "message", "errors"}
    httpx.delete(f"{world.url}/_admin/faults").raise_for_status()
    with world.client() as client:
        assert client.get("service/tickets/48211").status_code == 200


def test_journal_lists_vendor_requests_only(world: World) -> None:
    with world.client() as client:
        client.get("service/tickets/48211", params={"fields": "id"})
    entries = world.journal()
    assert [(e["method"], e["path"], e["query"], e["status"]) for e in entries] == [
        ("GET", f"{API_ROOT}/service/tickets/48211", "fields=id", 200)
    ]


def test_links_and_adapter_work_when_mounted_under_a_prefix() -> None:
    creds = SeedCredentials()
    app, state = create_connectwise_app(CUSTOMERS, creds)
    server = serve_in_thread(Starlette(routes=[Mount("/connectwise", app=app)]))
    try:
        world = World(server=server, state=state, creds=creds, url=f"{server.url}/connectwise")
        with world.client() as client:
            response = client.get("service/tickets", params={"pageSize": "1"})
        assert response.links["next"]["url"].startswith(f"{world.api}/service/tickets?")
        with world.adapter() as adapter:
            for i in range(120):  # more than one adapter page
                state.add_ticket(251, f"mounted {i}")
            tickets = adapter.list_open_tickets("251")
        assert len(tickets) == 122
        assert len(world.requests_to("GET", "/service/tickets")) == 3  # 1 direct + 2 pages
    finally:
        server.stop()


# --- the adapter against the emulator ---------------------------------------------------


def test_list_open_tickets_of_one_company(world: World) -> None:
    with world.adapter() as adapter:
        tickets = adapter.list_open_tickets(str(PEDRO.psa_company_id))
    assert sorted(t.id for t in tickets) == sorted(PEDRO.open_ticket_ids)
    assert all(not t.is_closed and t.company_id == "250" for t in tickets)
    by_id = {t.id: t for t in tickets}
    assert by_id["48211"].number == "48211"
    assert by_id["48211"].summary == "Install line-of-business app on FS01"
    assert by_id["48211"].status == "In Progress"


def test_list_open_tickets_follows_pages(world: World) -> None:
    opened = [world.state.add_ticket(252, f"bulk {i}") for i in range(230)]
    for i in range(20):
        world.state.add_ticket(252, f"done {i}", status="Closed", closed=True)
    with world.adapter() as adapter:
        tickets = adapter.list_open_tickets("252")
    assert sorted(int(t.id) for t in tickets) == opened
    pages = world.requests_to("GET", "/service/tickets")
    assert len(pages) == 3  # 230 open tickets, 100 per page
    assert "closedFlag" in pages[0]["query"]


def test_get_ticket_open_closed_and_unknown(world: World) -> None:
    with world.adapter() as adapter:
        open_ticket = adapter.get_ticket("48301")
        closed = adapter.get_ticket("48299")
        with pytest.raises(AdapterNotFoundError):
            adapter.get_ticket("1")
        with pytest.raises(AdapterNotFoundError):
            adapter.get_ticket("../company/companies/250")
    assert (open_ticket.is_closed, open_ticket.company_id, open_ticket.status) == (
        False,
        "251",
        "In Progress",
    )
    assert (closed.is_closed, closed.status) == (True, "Closed")


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "replace", "path": "closedFlag", "value": True}],
        [{"op": "replace", "path": "/status", "value": {"name": "Closed"}}],
        [{"op": "replace", "path": "status/id", "value": 30}],
    ],
)
def test_json_patch_closes_a_ticket(world: World, ops: list[dict[str, Any]]) -> None:
    with world.client() as cw:
        response = cw.patch("service/tickets/48301", json=ops)
        assert response.status_code == 200, response.text
        assert response.json()["closedFlag"] is True
        assert cw.patch("service/tickets/48301", json={"closedFlag": True}).status_code == 400
        bad = [{"op": "replace", "path": "summary", "value": "x"}]
        assert cw.patch("service/tickets/48301", json=bad).status_code == 400
    with world.client(auth=None) as anonymous:
        assert anonymous.patch("service/tickets/48302", json=ops).status_code == 401
    with world.adapter() as adapter:
        assert adapter.get_ticket("48301").is_closed
        assert not adapter.get_ticket("48302").is_closed


def test_add_note_then_find_it_by_marker(world: World) -> None:
    marker = "jit:7f3c2a9e:grant"
    with world.adapter() as adapter:
        assert adapter.find_note("48211", marker) is None
        note_id = adapter.add_note("48211", f"JIT access GRANTED.\n[{marker}]")
        assert adapter.find_note("48211", marker) == note_id
        assert adapter.find_note("48212", marker) is None  # another ticket
    stored = [n for n in world.state.notes(48211) if str(n["id"]) == note_id]
    assert len(stored) == 1
    posted = world.requests_to("POST", "/service/tickets/48211/notes")
    assert [p["body"] for p in posted] == [
        {
            "text": f"JIT access GRANTED.\n[{marker}]",
            "internalAnalysisFlag": True,
            "detailDescriptionFlag": False,
            "resolutionFlag": False,
            "processNotifications": False,
        }
    ]
    searches = world.requests_to("GET", "/service/tickets/48211/notes")
    assert all("jit%3A7f3c2a9e%3Agrant" in s["query"] for s in searches)


def test_find_note_checks_the_marker_exactly(world: World) -> None:
    with world.adapter() as adapter:
        adapter.add_note("48212", "upper case\n[JIT:abc123:revoke]")
        # The server's contains ignores case; the adapter must not take that as a match.
        assert adapter.find_note("48212", "jit:abc123:revoke") is None
        quoted = 'say "hi" \\ jit:q1:grant'
        note_id = adapter.add_note("48212", f"quoted\n[{quoted}]")
        assert adapter.find_note("48212", quoted) == note_id


def test_add_note_rejected_by_validation(world: World) -> None:
    with world.adapter() as adapter, pytest.raises(RejectedError) as caught:
        adapter.add_note("48213", "   ")
    assert "serviceNote object is invalid" in str(caught.value)
    assert caught.value.vendor_code == "InvalidObject"


def test_bad_key_is_misconfigured(world: World) -> None:
    with world.adapter(private_key="not-the-key") as adapter, pytest.raises(MisconfiguredError):
        adapter.get_ticket("48211")
    assert len(world.journal()) == 1  # not retried


def test_wrong_codebase_is_misconfigured_not_an_empty_list(world: World) -> None:
    with world.adapter(base_url=f"{world.url}/v2025_1/apis/3.0") as adapter:
        with pytest.raises(MisconfiguredError):
            adapter.list_open_tickets("250")
        with pytest.raises(MisconfiguredError):
            adapter.list_open_tickets("PedroAviary")  # an identifier where the id belongs


def test_forbidden_is_misconfigured(world: World) -> None:
    world.faults(error_status=403)
    with world.adapter() as adapter, pytest.raises(MisconfiguredError):
        adapter.list_open_tickets("250")


def test_429_honours_retry_after(world: World) -> None:
    world.faults(error_status=429, retry_after_s=2)
    sleeps = Sleeps()
    with world.adapter(sleep=sleeps) as adapter, pytest.raises(TransientError) as caught:
        adapter.get_ticket("48211")
    assert caught.value.retry_after_s == 2
    assert sleeps.waits == [2.0, 2.0]  # short enough to wait out: two retries, then give up
    assert len(world.journal()) == 3


def test_long_retry_after_is_left_to_the_caller(world: World) -> None:
    world.faults(error_status=429, retry_after_s=120)
    sleeps = Sleeps()
    with world.adapter(sleep=sleeps) as adapter, pytest.raises(TransientError) as caught:
        adapter.find_note("48211", "[jit:x:grant]")
    assert caught.value.retry_after_s == 120
    assert sleeps.waits == []
    assert len(world.journal()) == 1


def test_server_error_is_transient_and_gets_are_retried(world: World) -> None:
    world.faults(error_status=500, error_count=1)
    with world.adapter() as adapter:
        assert adapter.get_ticket("48211").id == "48211"
    assert [e["status"] for e in world.journal()] == [500, 200]
    world.faults(error_status=502, error_count=None)
    with world.adapter() as adapter, pytest.raises(TransientError):
        adapter.get_ticket("48211")


def test_note_post_is_never_retried(world: World) -> None:
    world.faults(error_status=500, match="POST")
    with world.adapter() as adapter, pytest.raises(TransientError):
        adapter.add_note("48211", "outcome unknown [jit:post1:grant]")
    assert len(world.requests_to("POST", "/notes")) == 1


def test_outage_is_transient(world: World) -> None:
    world.faults(outage=True)
    with world.adapter() as adapter, pytest.raises(TransientError) as caught:
        adapter.list_open_tickets("250")
    assert "503" in str(caught.value)


def test_latency_shows_in_flight_then_times_out(world: World) -> None:
    # Held far longer than the client waits; cleared once the client has given up.
    world.faults(latency_ms=HELD_MS, match="GET /v4_6_release/apis/3.0/service/tickets/48302")
    outcome: list[BaseException] = []

    def call() -> None:
        with world.adapter(timeout_s=0.5, get_attempts=1) as adapter:
            try:
                adapter.get_ticket("48302")
            except AdapterError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    in_flight = wait_for(
        lambda: [e for e in world.journal() if e["status"] is None],
        timeout=10.0,
        what="an in-flight request",
    )
    assert in_flight[0]["path"].endswith("/service/tickets/48302")
    worker.join(timeout=30)
    assert not worker.is_alive()
    httpx.delete(f"{world.url}/_admin/faults").raise_for_status()
    assert len(outcome) == 1
    assert isinstance(outcome[0], TransientError)
    assert "timed out" in str(outcome[0])


def test_commit_then_drop_leaves_the_note_findable(world: World) -> None:
    marker = "jit:dropped1:revoke"
    httpx.post(f"{world.url}/_admin/drop_after_commit", json={"count": 1}).raise_for_status()
    with world.adapter() as adapter:
        with pytest.raises(TransientError):
            adapter.add_note("48301", f"revoked\n[{marker}]")
        assert [n["text"] for n in world.state.notes(48301)] == [f"revoked\n[{marker}]"]
        found = adapter.find_note("48301", marker)
        assert found == str(world.state.notes(48301)[0]["id"])
        # The switch is used up: the next POST answers normally.
        assert adapter.add_note("48301", "second note [jit:dropped2:revoke]")


# --- secrets and hosts ------------------------------------------------------------------


def test_secrets_never_show_in_errors_or_repr(world: World) -> None:
    secret = world.creds.cw_private_key
    wrong = "wrong-private-key-123"
    errors: list[AdapterError] = []
    with world.adapter(private_key=wrong) as adapter, pytest.raises(MisconfiguredError) as bad:
        adapter.get_ticket("48211")
    errors.append(bad.value)
    for settings in ({"error_status": 500}, {"error_status": 429, "retry_after_s": 1}):
        world.faults(**settings)
        with world.adapter() as adapter, pytest.raises(TransientError) as caught:
            adapter.add_note("48211", "x [jit:s:grant]")
        errors.append(caught.value)
    world.faults(outage=False, error_status=None)
    closed = f"http://127.0.0.1:{free_port()}{API_ROOT}"
    with world.adapter(base_url=closed) as adapter, pytest.raises(TransientError) as refused:
        adapter.get_ticket("48211")
    errors.append(refused.value)
    assert refused.value.__cause__ is None
    assert refused.value.__context__ is None

    adapter = world.adapter()
    shown = [repr(adapter), str(adapter)] + [text for e in errors for text in (str(e), repr(e))]
    for text in shown:
        assert secret not in text
        assert wrong not in text
    adapter.close()


def test_credentials_never_follow_a_link_to_another_host() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        link = '<https://evil.example/v4_6_release/apis/3.0/service/tickets?page=2>; rel="next"'
        return httpx.Response(200, json=[], headers={"Link": link})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    adapter = ConnectWiseTickets(
        "https://api-na.myconnectwise.net/v4_6_release/apis/3.0",
        "mspco",
        "pub",
        "priv-secret",
        "client",
        http=http,
    )
    with pytest.raises(MisconfiguredError):
        adapter.list_open_tickets("250")
    assert hosts == ["api-na.myconnectwise.net"]
