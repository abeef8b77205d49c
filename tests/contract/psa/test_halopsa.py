"""HaloPSA specifics: the emulator spoken to directly, then what only the Halo adapter
does (tokens with a tenant, outcomes, reopened tickets, the rolling rate limit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jitadmin.core.errors import MisconfiguredError, TransientError
from jitadmin.emulators.psa.halopsa.state import CLOSED
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.emulators.server import EmulatorWorld

from support.psa_clients import halo_client
from support.psa_harness import Harness, Sleeps, fresh_harness, running_world

PEDRO, NORTHWIND = CUSTOMERS
RATE_TEXT = "Rate Limit Reached - 300 Requests per rolling 5 minute window"


@pytest.fixture(scope="module")
def world() -> Iterator[EmulatorWorld]:
    yield from running_world(psa_kind="halopsa")


@pytest.fixture
def halo(world: EmulatorWorld) -> Iterator[Harness]:
    yield from fresh_harness("halopsa", world)


@pytest.fixture
def api(halo: Harness) -> Iterator[httpx.Client]:
    with halo_client(halo.psa) as client:
        yield client


def token_request(halo: Harness, **changes: Any) -> httpx.Response:
    p = halo.psa
    form = {"grant_type": "client_credentials", "client_id": p["client_id"],
            "client_secret": p["client_secret"], "scope": "all"}  # fmt: skip
    tenant = changes.pop("tenant", p["tenant"])
    form.update(changes)
    params = {"tenant": tenant} if tenant is not None else {}
    return httpx.post(f"{p['auth_url']}/token", params=params, data=form)


# --- the emulator -----------------------------------------------------------------------


def test_authinfo_names_the_auth_server_and_tenant(halo: Harness) -> None:
    info = httpx.get(f"{halo.psa['base_url']}/api/authinfo").json()
    assert info == {"auth_url": halo.psa["auth_url"], "tenant_id": "mspdemo"}


def test_client_credentials_token_needs_the_tenant(halo: Harness) -> None:
    ok = token_request(halo)
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "Bearer"
    assert ok.json()["expires_in"] == 3600
    assert token_request(halo, tenant=None).json()["error"] == "invalid_request"
    assert token_request(halo, tenant="other").status_code == 400
    wrong = token_request(halo, client_secret="nope")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert token_request(halo, grant_type="password").json()["error"] == "unsupported_grant_type"
    # The token request is journaled without its body: the secret never lands in a log.
    assert all(e["body"] is None for e in halo.requests("POST", "/auth/token"))


def test_api_needs_a_valid_token_and_ignores_path_case(halo: Harness, api: httpx.Client) -> None:
    assert httpx.get(f"{halo.psa['base_url']}/api/Tickets/48211").status_code == 401
    bad = httpx.get(
        f"{halo.psa['base_url']}/api/Tickets/48211", headers={"Authorization": "Bearer x"}
    )
    assert bad.status_code == 401
    assert bad.json()["ClassName"] == "System.UnauthorizedAccessException"
    assert api.get("/TICKETS/48211").json()["summary"] == "Install line-of-business app on FS01"
    assert api.get("/tickets/48211").status_code == 200
    assert [e["path"] for e in halo.journal()][-2:] == ["/api/TICKETS/48211", "/api/tickets/48211"]


def test_ticket_listing_filters_pages_and_orders(api: httpx.Client) -> None:
    params: dict[str, Any] = {
        "client_id": 250, "open_only": "true", "pageinate": "true", "page_size": 2,
        "page_no": 1, "order": "id", "orderdesc": "true",
    }  # fmt: skip
    first = api.get("/Tickets", params=params).json()
    assert (first["page_no"], first["page_size"], first["record_count"]) == (1, 2, 3)
    assert [t["id"] for t in first["tickets"]] == [48213, 48212]
    second = api.get("/Tickets", params=params | {"page_no": 2}).json()
    assert [t["id"] for t in second["tickets"]] == [48211]
    closed = api.get("/Tickets", params={"client_id": 251, "closed_only": "true"}).json()
    assert [t["id"] for t in closed["tickets"]] == [48299]
    assert closed["tickets"][0]["hasbeenclosed"] is True
    capped = api.get("/Tickets", params={"count": 2}).json()
    assert len(capped["tickets"]) == 2 and capped["record_count"] > 2
    missing = api.get("/Tickets/1")
    assert missing.status_code == 404
    assert set(missing.json()) == {"ClassName", "Message"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"ticket_id": 48211, "outcome_id": 7, "note": "x"}, "JSON array"),
        ([{"ticket_id": 48211, "note": "x"}], "An Outcome must be entered for this Action"),
        ([{"outcome_id": 7, "note": "x"}], "A Ticket must be selected"),
        ([{"ticket_id": 1, "outcome_id": 7, "note": "x"}], "does not exist"),
    ],
    ids=["object-not-array", "no-outcome", "no-ticket", "unknown-ticket"],
)
def test_actions_are_validated(api: httpx.Client, body: Any, message: str) -> None:
    response = api.post("/Actions", json=body)
    assert response.status_code == 400
    assert response.json()["ClassName"] == "Halo.Exceptions.ValidationException"
    assert message in response.json()["Message"]


def test_actions_are_created_as_an_array_and_read_back(api: httpx.Client) -> None:
    body = [
        {"ticket_id": 48212, "outcome_id": 7, "note": "first", "hiddenfromuser": True},
        {"ticket_id": 48212, "outcome": "private note", "note_html": "<p>second</p>"},
    ]
    created = api.post("/Actions", json=body)
    assert created.status_code == 201
    made = created.json()
    assert [(a["outcome"], a["note"]) for a in made] == [
        ("Private Note", "first"),
        ("Private Note", "second"),
    ]
    listed = api.get("/Actions", params={"ticket_id": 48212, "count": 50}).json()
    assert [a["id"] for a in listed["actions"]][-2:] == [a["id"] for a in made]
    assert api.get(f"/Actions/{made[0]['id']}", params={"ticket_id": 48212}).status_code == 200
    assert api.get("/Actions/999999", params={"ticket_id": 48212}).status_code == 404


def test_rolling_rate_limit_answers_429_with_halos_text(halo: Harness, api: httpx.Client) -> None:
    httpx.put(f"{halo.admin_url}/rate_limit", json={"limit": 3, "used": 1}).raise_for_status()
    answers = [api.get("/Tickets/48211") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].text == "Rate Limit Reached - 3 Requests per rolling 5 minute window"
    httpx.delete(f"{halo.admin_url}/faults").raise_for_status()
    assert api.get("/Tickets/48211").status_code == 200
    # Hosted Halo's own figure: 300 per rolling 5 minutes.
    httpx.put(f"{halo.admin_url}/rate_limit", json={"limit": 300, "used": 300}).raise_for_status()
    assert api.get("/Tickets/48211").text == RATE_TEXT


# --- the adapter ------------------------------------------------------------------------


def test_one_token_serves_many_calls_and_a_revoked_one_is_replaced(halo: Harness) -> None:
    adapter = halo.adapter()
    adapter.get_ticket("48211")
    adapter.list_open_tickets("250")
    assert len(halo.requests("POST", "/auth/token")) == 1
    httpx.post(f"{halo.admin_url}/expire_tokens").raise_for_status()
    assert adapter.get_ticket("48212").id == "48212"
    assert len(halo.requests("POST", "/auth/token")) == 2
    statuses = [e["status"] for e in halo.requests("GET", "/api/Tickets/48212")]
    assert statuses == [401, 200]


def test_tenant_comes_from_authinfo_when_not_configured(halo: Harness) -> None:
    adapter = halo.adapter(tenant=None)
    assert adapter.get_ticket("48211").company_id == "250"
    token_calls = halo.requests("POST", "/auth/token")
    assert [e["query"] for e in token_calls] == ["tenant=mspdemo"]
    assert len(halo.requests("GET", "/api/authinfo")) == 1


def test_a_reopened_ticket_is_open_although_it_has_been_closed(halo: Harness) -> None:
    ticket_id = halo.add_ticket(251, "reopened later")
    halo.world.psa_state("halopsa").set_status(ticket_id, CLOSED)
    adapter = halo.adapter()
    assert adapter.get_ticket(str(ticket_id)).is_closed is True
    halo.world.psa_state("halopsa").set_status(ticket_id, 2)
    assert halo.world.psa_state("halopsa").ticket(ticket_id)["hasbeenclosed"] is True
    reopened = adapter.get_ticket(str(ticket_id))
    assert (reopened.is_closed, reopened.status) == (False, "In Progress")


def test_outcome_is_a_setting_and_check_validates_it(halo: Harness) -> None:
    halo.adapter(outcome_id=2).add_note("48212", "outcome two [jitadmin:o2:granted]")
    (post,) = halo.note_posts()
    assert post["body"][0]["outcome_id"] == 2
    with pytest.raises(MisconfiguredError, match="1 Email User, 2 Update, 7 Private Note"):
        halo.adapter(outcome_id=5).check()
    findings = halo.adapter().check()
    assert "notes use outcome 7 'Private Note'" in findings


def test_rate_limited_halo_is_left_to_the_caller_for_30_seconds(halo: Harness) -> None:
    sleeps = Sleeps()
    adapter = halo.adapter(sleep=sleeps)
    adapter.get_ticket("48211")  # token and status names fetched while there is room
    httpx.put(f"{halo.admin_url}/rate_limit", json={"limit": 2, "used": 2}).raise_for_status()
    with pytest.raises(TransientError, match="Rate Limit Reached") as caught:
        adapter.find_note("48211", "jitadmin:x:granted")
    assert caught.value.retry_after_s == 30.0
    assert sleeps.waits == []  # a 30 s wait is the outbox's to schedule, not ours to block on


def test_post_on_tickets_closes_a_ticket_as_halo_does(halo: Harness, api: httpx.Client) -> None:
    """Halo updates tickets by ``POST /api/Tickets``, an array with ``id``."""
    ticket_id = halo.add_ticket(251, "closed through the API")
    adapter = halo.adapter()
    assert adapter.get_ticket(str(ticket_id)).is_closed is False
    bad_bodies: list[Any] = [
        {"id": ticket_id, "status_id": CLOSED},  # not an array
        [{"id": ticket_id, "status_id": 77}],
        [{"id": ticket_id, "status_id": CLOSED}, {"id": 999999, "status_id": CLOSED}],
    ]
    for bad in bad_bodies:
        assert api.post("/Tickets", json=bad).status_code in (400, 404)
    assert adapter.get_ticket(str(ticket_id)).is_closed is False  # checked whole, nothing changed
    done = api.post("/Tickets", json=[{"id": ticket_id, "status_id": CLOSED}])
    assert (done.status_code, done.json()["status_id"]) == (201, CLOSED)
    assert adapter.get_ticket(str(ticket_id)).is_closed is True
