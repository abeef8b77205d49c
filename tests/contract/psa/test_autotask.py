"""Autotask specifics: the emulator spoken to directly, then what only the Autotask
adapter does (zones, picklists, note settings, the hourly request threshold)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jitadmin.adapters.psa.autotask.adapter import AutotaskTickets
from jitadmin.core.errors import MisconfiguredError, TransientError
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.emulators.server import EmulatorWorld

from support.config import TEST_EGRESS
from support.psa_clients import autotask_client
from support.psa_harness import Harness, Sleeps, fresh_harness, running_world

PEDRO, NORTHWIND = CUSTOMERS


@pytest.fixture(scope="module")
def world() -> Iterator[EmulatorWorld]:
    yield from running_world(psa_kind="autotask")


@pytest.fixture
def at(world: EmulatorWorld) -> Iterator[Harness]:
    yield from fresh_harness("autotask", world)


@pytest.fixture
def api(at: Harness) -> Iterator[httpx.Client]:
    with autotask_client(at.psa) as client:
        yield client


def query(api: httpx.Client, filters: list[Any], **extra: Any) -> httpx.Response:
    return api.post("V1.0/Tickets/query", json={"filter": filters, **extra})


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# --- the emulator -----------------------------------------------------------------------


def test_zone_discovery_needs_no_auth_and_knows_its_user(at: Harness) -> None:
    base = at.psa["base_url"]
    found = httpx.get(f"{base}/V1.0/zoneInformation", params={"user": at.psa["username"]})
    assert found.status_code == 200
    assert found.json()["url"].endswith("/zone5/ATServicesRest/")
    unknown = httpx.get(f"{base}/V1.0/zoneInformation", params={"user": "nobody@x.example"})
    assert unknown.status_code == 500
    # The discovery root is not the zone: entity calls there do not exist.
    headers = {"ApiIntegrationCode": at.psa["integration_code"], "UserName": at.psa["username"],
               "Secret": at.psa["secret"]}  # fmt: skip
    assert httpx.post(f"{base}/V1.0/Tickets/query", json={}, headers=headers).status_code == 404


@pytest.mark.parametrize("drop", ["ApiIntegrationCode", "UserName", "Secret"])
def test_each_of_the_three_headers_is_required(api: httpx.Client, drop: str) -> None:
    response = api.get("V1.0/Tickets/48211", headers={drop: "wrong"})  # overrides the good one
    assert response.status_code == 401
    assert response.json()["errors"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([{"op": "eq", "field": "companyID", "value": 250}, {"op": "noteq", "field": "status",
          "value": 5}], [48211, 48212, 48213]),
        ([{"op": "in", "field": "status", "value": [1, 7]}, {"op": "lt", "field": "id",
          "value": 48300}], [48212, 48213]),
        ([{"op": "or", "items": [{"op": "beginsWith", "field": "title", "value": "laptop"},
          {"op": "and", "items": [{"op": "gte", "field": "id", "value": 48302},
                                  {"op": "contains", "field": "TITLE", "value": "RETENTION"}]}]}],
         [48299, 48302]),
        ([{"op": "endsWith", "field": "title", "value": "FS01"}], [48211]),
        ([{"op": "notIn", "field": "companyID", "value": [250]}, {"op": "gt", "field": "id",
          "value": 48299}, {"op": "lte", "field": "id", "value": 48301}], [48301]),
        ([{"op": "exist", "field": "completedDate"}], [48190, 48299]),
        ([{"op": "notExist", "field": "completedDate"}, {"op": "eq", "field": "companyID",
          "value": 251}], [48301, 48302]),
    ],
)  # fmt: skip
def test_filter_grammar(api: httpx.Client, filters: list[Any], expected: list[int]) -> None:
    assert ids(query(api, filters)) == expected


def test_property_names_are_case_insensitive_and_get_search_works(api: httpx.Client) -> None:
    body = {"Filter": [{"Op": "eq", "Field": "id", "Value": 48212}], "maxRecords": 1}
    assert ids(api.post("V1.0/Tickets/query", json=body)) == [48212]
    assert ids(api.get("V1.0/Tickets/query", params={"search": json.dumps(body)})) == [48212]


@pytest.mark.parametrize(
    "body",
    [
        {"filter": [{"op": "eq", "field": "nosuchfield", "value": 1}]},
        {"filter": [{"op": "eq", "field": "id", "value": None}]},
        {"filter": [{"op": "in", "field": "id", "value": 1}]},
        {"filter": [{"op": "near", "field": "id", "value": 1}]},
        {"filter": [{"op": "exist", "field": "id"}], "MaxRecords": 501},
        {"filter": []},
    ],
    ids=["unknown-field", "null", "in-scalar", "bad-op", "too-many", "empty"],
)
def test_bad_queries_are_500_with_errors(api: httpx.Client, body: dict[str, Any]) -> None:
    response = api.post("V1.0/Tickets/query", json=body)
    assert response.status_code == 500
    assert isinstance(response.json()["errors"], list) and response.json()["errors"]


def test_paging_include_fields_and_count(api: httpx.Client) -> None:
    body = {"MaxRecords": 2, "IncludeFields": ["id", "ticketNumber"],
            "filter": [{"op": "eq", "field": "companyID", "value": 250}]}  # fmt: skip
    first = api.post("V1.0/Tickets/query", json=body).json()
    assert first["items"][0] == {"id": 48190, "ticketNumber": "T20261120.0004",
                                 "userDefinedFields": []}  # fmt: skip
    details = first["pageDetails"]
    assert (details["count"], details["requestCount"], details["prevPageUrl"]) == (2, 2, None)
    by_post = api.post(details["nextPageUrl"], json=body).json()
    by_get = api.get(details["nextPageUrl"]).json()
    assert by_post == by_get
    assert [i["id"] for i in by_get["items"]] == [48212, 48213]
    assert by_get["pageDetails"]["nextPageUrl"] is None
    count = api.post("V1.0/Tickets/query/count", json=body)
    assert count.json() == {"queryCount": 4}


def test_missing_ticket_is_a_null_item_not_404(api: httpx.Client) -> None:
    missing = api.get("V1.0/Tickets/1")
    assert (missing.status_code, missing.json()) == (200, {"item": None})
    assert api.get("V1.0/Tickets/48211").json()["item"]["ticketNumber"] == "T20261120.0001"


def test_picklists_are_served(api: httpx.Client) -> None:
    fields = {
        f["name"]: f for f in api.get("V1.0/Tickets/entityInformation/fields").json()["fields"]
    }
    statuses = {int(v["value"]): v["label"] for v in fields["status"]["picklistValues"]}
    assert statuses[5] == "Complete"
    notes = api.get("V1.0/TicketNotes/entityInformation/fields").json()["fields"]
    note_types = next(f for f in notes if f["name"] == "noteType")["picklistValues"]
    assert [v["label"] for v in note_types] == ["Task Summary", "Task Detail", "Task Notes"]


def test_note_validation_and_creation(api: httpx.Client, at: Harness) -> None:
    ok = {"title": "T", "description": "hello", "noteType": 1, "publish": 2}
    no_title = api.post("V1.0/Tickets/48211/Notes", json={**ok, "title": ""})
    assert no_title.status_code == 500
    assert no_title.json() == {
        "errors": ["Title is required for notes on tickets in this category."]
    }
    bad_publish = api.post("V1.0/Tickets/48212/Notes", json={**ok, "publish": 7})
    assert bad_publish.status_code == 500
    created = api.post("V1.0/Tickets/48212/Notes", json=ok)
    assert created.status_code == 200
    note_id = created.json()["itemId"]
    listed = api.get("V1.0/Tickets/48212/Notes").json()["items"]
    assert note_id in [n["id"] for n in listed]
    assert next(n for n in listed if n["id"] == note_id)["ticketID"] == 48212


def test_hourly_threshold_is_counted_and_enforced(api: httpx.Client, at: Harness) -> None:
    before = api.get("V1.0/ThresholdInformation").json()
    api.get("V1.0/Tickets/48211")
    after = api.get("V1.0/ThresholdInformation").json()
    assert after["currentTimeframeRequestCount"] == before["currentTimeframeRequestCount"] + 1
    assert (after["externalRequestThreshold"], after["requestThresholdTimeframe"]) == (10000, 60)
    httpx.put(f"{at.admin_url}/threshold", json={"limit": 3, "used": 3}).raise_for_status()
    refused = api.get("V1.0/Tickets/48211")
    assert refused.status_code == 429
    assert "threshold" in refused.json()["errors"][0]


# --- the adapter ------------------------------------------------------------------------


def test_zone_is_discovered_once_and_again_after_a_401(at: Harness) -> None:
    adapter = at.adapter()
    adapter.get_ticket("48211")
    adapter.list_open_tickets("250")
    assert len(at.requests("GET", "zoneInformation")) == 1
    at.faults(error_status=401, error_count=1, match="/Tickets/48212")
    assert adapter.get_ticket("48212").id == "48212"
    assert len(at.requests("GET", "zoneInformation")) == 2


def test_unknown_user_and_foreign_zone_are_misconfigured(at: Harness) -> None:
    psa = at.psa
    stranger = AutotaskTickets(psa["base_url"], "nobody@x.example", "s", "c", egress=TEST_EGRESS)
    with pytest.raises(MisconfiguredError, match="no zone"):
        stranger.get_ticket("48211")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"url": "https://webservices5.evil.example/ATServicesRest/"}
        )

    http = httpx.Client(transport=httpx.MockTransport(handler))
    foreign = AutotaskTickets("https://webservices.autotask.net/ATServicesRest", "u", "s", "c",
                              http=http)  # fmt: skip
    with pytest.raises(MisconfiguredError, match="outside"):
        foreign.get_ticket("1")


def test_status_labels_come_from_the_picklist(at: Harness) -> None:
    tickets = {t.id: t for t in at.adapter().list_open_tickets("250")}
    assert tickets["48211"].status == "In Progress"
    assert tickets["48213"].status == "Waiting Customer"


def test_note_type_is_a_setting_and_check_validates_it(at: Harness) -> None:
    adapter = at.adapter(note_type=3)
    adapter.add_note("48212", "typed [jitadmin:nt:granted]")
    assert at.note_posts()[-1]["body"]["noteType"] == 3
    with pytest.raises(MisconfiguredError, match="1 Task Summary, 2 Task Detail, 3 Task Notes"):
        at.adapter(note_type=9).check()
    assert any("of 10000 requests" in f for f in adapter.check())


def test_slows_down_and_holds_back_before_the_threshold_is_hit(
    at: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    httpx.put(f"{at.admin_url}/threshold", json={"limit": 40, "used": 15}).raise_for_status()
    sleeps = Sleeps()
    adapter = at.adapter(sleep=sleeps, slow_ratio=0.5, stop_ratio=0.9)
    answered: list[str] = []

    def keep_asking() -> None:
        while len(answered) < 40:
            answered.append(adapter.get_ticket("48211").id)

    with caplog.at_level(logging.WARNING), pytest.raises(TransientError) as held:
        keep_asking()
    # Held back at 90% of 40 = 36 requests; Autotask itself never refused anything.
    assert all(e["status"] != 429 for e in at.journal())
    assert len(at.requests("GET", "/Tickets/48211")) == len(answered)
    assert 15 < len(answered) < 21  # 15 used by others, 36 the line, 1 lookup of the status labels
    assert "hourly threshold" in str(held.value)
    assert held.value.retry_after_s == 300
    assert sleeps.waits and set(sleeps.waits) == {0.5}  # paced from 50% on
    assert any("slowing down" in r.getMessage() for r in caplog.records)


def test_a_used_up_threshold_is_seen_before_any_request(at: Harness) -> None:
    httpx.put(f"{at.admin_url}/threshold", json={"limit": 10, "used": 10}).raise_for_status()
    with pytest.raises(TransientError, match="hourly threshold"):
        at.adapter().get_ticket("48211")
    assert [e["path"].rsplit("/", 1)[-1] for e in at.journal()] == [
        "zoneInformation",
        "ThresholdInformation",
    ]
    # Should Autotask refuse anyway (others raced us past it), that is transient too.
    at.reset()
    at.faults(error_status=429, match="/Tickets/48211")
    with pytest.raises(TransientError, match="429") as refused:
        at.adapter().get_ticket("48211")
    assert refused.value.retry_after_s == 60.0
    assert len(at.requests("GET", "/Tickets/48211")) == 1  # a minute is not waited inline


def test_patch_on_tickets_closes_a_ticket_as_autotask_does(at: Harness, api: httpx.Client) -> None:
    """Autotask updates a ticket with ``PATCH /V1.0/Tickets``, the id in the body."""
    ticket_id = at.add_ticket(251, "closed through the API")
    adapter = at.adapter()
    assert adapter.get_ticket(str(ticket_id)).is_closed is False
    for bad in ({"status": 5}, {"id": ticket_id, "status": 999}, {"id": 999999, "status": 5}):
        assert api.patch("V1.0/Tickets", json=bad).status_code == 500
    assert adapter.get_ticket(str(ticket_id)).is_closed is False  # refused calls change nothing
    done = api.patch("V1.0/Tickets", json={"id": ticket_id, "status": 5})  # 5 = Complete
    assert (done.status_code, done.json()) == (200, {"itemId": ticket_id})
    assert adapter.get_ticket(str(ticket_id)).is_closed is True
    assert str(ticket_id) not in [t.id for t in adapter.list_open_tickets("251")]
