"""The TicketSystem contract, asked of every PSA adapter against its emulator over real HTTP.

ConnectWise, Autotask and HaloPSA must answer alike: open tickets of one company newest first
with number and summary, owner and open state of one ticket, notes posted internally and found
again by their marker, and every failure mapped to the adapter error taxonomy with a message a
person can act on, never a secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)
from jitadmin.core.texts import neutral
from jitadmin.emulators.runner import free_port
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.emulators.server import EmulatorWorld

from support.psa_harness import BIGCO, KINDS, Harness, Sleeps, fresh_harness, running_world

PEDRO, NORTHWIND = CUSTOMERS
SUMMARIES = {str(t.id): t.summary for c in CUSTOMERS for t in c.tickets}


@pytest.fixture(scope="module")
def world() -> Iterator[EmulatorWorld]:
    yield from running_world(customers=(*CUSTOMERS, BIGCO))


@pytest.fixture(params=KINDS)
def psa(request: pytest.FixtureRequest, world: EmulatorWorld) -> Iterator[Harness]:
    yield from fresh_harness(request.param, world)


def desc(ids: list[str]) -> list[str]:
    return sorted(ids, key=int, reverse=True)


# --- the ticket picker and the submit-time check ----------------------------------------


def test_open_tickets_newest_first_with_number_and_summary(psa: Harness) -> None:
    tickets = psa.adapter().list_open_tickets(str(PEDRO.psa_company_id))
    assert [t.id for t in tickets] == desc(PEDRO.open_ticket_ids)
    for ticket in tickets:
        assert ticket.summary == SUMMARIES[ticket.id]
        assert (ticket.company_id, ticket.is_closed) == ("250", False)
        assert ticket.status and ticket.status not in {"Closed", "Complete"}
    numbers = [t.number for t in tickets]
    if psa.kind == "autotask":
        # Autotask shows ticketNumber (T<date>.<seq>), not the id.
        assert all(n.startswith("T2026") and "." in n for n in numbers)
        assert len(set(numbers)) == len(numbers)
    else:
        assert numbers == [t.id for t in tickets]


def test_only_that_companys_open_tickets(psa: Harness) -> None:
    tickets = psa.adapter().list_open_tickets(str(NORTHWIND.psa_company_id))
    assert [t.id for t in tickets] == desc(NORTHWIND.open_ticket_ids)
    assert psa.adapter().list_open_tickets("999") == []


def test_listing_follows_every_page(psa: Harness) -> None:
    opened = [psa.add_ticket(252, f"bulk {i}") for i in range(520)]
    for i in range(5):
        psa.add_ticket(252, f"done {i}", closed=True)
    tickets = psa.adapter().list_open_tickets("252")
    assert [int(t.id) for t in tickets] == sorted(opened, reverse=True)
    assert len(psa.listing_requests()) >= 2  # 520 tickets never fit one page of any of the three


def test_ticket_owner_and_open_state(psa: Harness) -> None:
    adapter = psa.adapter()
    other = adapter.get_ticket(NORTHWIND.open_ticket_ids[0])
    assert (other.company_id, other.is_closed) == ("251", False)
    closed = adapter.get_ticket(PEDRO.closed_ticket_ids[0])
    assert (closed.company_id, closed.is_closed) == ("250", True)
    for unknown in ("1", "../service", "12a"):
        with pytest.raises(AdapterNotFoundError):
            adapter.get_ticket(unknown)


def test_a_ticket_closed_after_listing_reads_closed(psa: Harness) -> None:
    ticket_id = psa.add_ticket(251, "closes soon")
    adapter = psa.adapter()
    assert str(ticket_id) in [t.id for t in adapter.list_open_tickets("251")]
    psa.close_ticket(ticket_id)
    assert adapter.get_ticket(str(ticket_id)).is_closed is True
    assert str(ticket_id) not in [t.id for t in adapter.list_open_tickets("251")]


# --- notes ------------------------------------------------------------------------------


def test_note_is_internal_and_found_again_by_marker(psa: Harness) -> None:
    marker = f"jitadmin:{psa.kind}-round-trip:granted"
    ticket = PEDRO.open_ticket_ids[0]
    adapter = psa.adapter()
    assert adapter.find_note(ticket, marker) is None
    text = f"The account x is now enabled.\nRequested by tech.\n[{marker}]"
    note_id = adapter.add_note(ticket, text)
    assert adapter.find_note(ticket, marker) == note_id
    assert adapter.find_note(PEDRO.open_ticket_ids[1], marker) is None
    assert [n for n in psa.stored_notes(ticket) if n[0] == note_id] == [(note_id, text)]
    (post,) = psa.note_posts()
    assert_internal(psa.kind, post["body"])


def assert_internal(kind: str, body: Any) -> None:
    """The note is private to the MSP and e-mails nobody (each vendor's own flags)."""
    if kind == "connectwise":
        assert body["internalAnalysisFlag"] is True
        assert body["processNotifications"] is False
    elif kind == "autotask":
        assert body["publish"] == 2  # Internal Users
        assert body["noteType"] == 1
        assert body["title"] == "The account x is now enabled."
    else:
        assert isinstance(body, list) and len(body) == 1  # Halo takes an array, always
        assert body[0]["hiddenfromuser"] is True
        assert body[0]["sendemail"] is False
        assert body[0]["outcome_id"] == 7


def test_find_note_matches_the_marker_exactly_on_every_page(psa: Harness) -> None:
    ticket = int(PEDRO.open_ticket_ids[2])
    for i in range(130):
        psa.seed_note(ticket, f"someone else's note {i}\n[jitadmin:other-{i}:granted]")
    adapter = psa.adapter()
    adapter.add_note(str(ticket), "upper case\n[JITADMIN:CASE1:REVOKED]")
    # The vendors' text search ignores case; the adapter must not take that as a match.
    assert adapter.find_note(str(ticket), "jitadmin:case1:revoked") is None
    quoted = 'say "hi" \\\n[jitadmin:q1:granted]'
    note_id = adapter.add_note(str(ticket), quoted)
    assert adapter.find_note(str(ticket), "jitadmin:q1:granted") == note_id
    assert adapter.find_note(str(ticket), "jitadmin:other-129:granted") is not None


def test_a_marker_quoted_in_another_note_never_counts(psa: Harness) -> None:
    """Issue 12 item 11: grant B's reason quotes grant A's marker; A's note must still go out.

    Before the fix a reason like this one made ``find_note`` answer with B's note, so A's
    revocation note was taken as posted and never reached the ticket.
    """
    ticket = str(psa.add_ticket(251, "quoted marker"))
    adapter = psa.adapter()
    victim = "jitadmin:victim-a:revoked"
    reason = f"fix printer\n[{victim}]\r\n[{victim}]"
    b_note = f"The account b is now enabled.\nReason: {neutral(reason)}\n[jitadmin:b:granted]"
    b_id = adapter.add_note(ticket, b_note)
    # Even a note whose text put the marker on a later line of its own is not A's note
    # unless that line is the note's last one.
    adapter.add_note(ticket, f"someone pasted\n[{victim}]\nand wrote on")
    assert adapter.find_note(ticket, victim) is None
    assert adapter.find_note(ticket, "jitadmin:b:granted") == b_id
    a_id = adapter.add_note(ticket, f"Global Admin has been removed.\n[{victim}]")
    assert adapter.find_note(ticket, victim) == a_id
    stored = dict(psa.stored_notes(ticket))
    assert stored[b_id].count("\n") == 2  # the reason's line breaks were flattened
    assert f"[{victim}]" not in stored[b_id]


def test_lost_answer_after_commit_leaves_one_findable_note(psa: Harness) -> None:
    # "500": stored, then a server error; "drop": stored, then the connection cut mid-answer.
    # (ConnectWise's emulator has the first only.)
    modes = ["500"] if psa.kind == "connectwise" else ["500", "drop"]
    ticket = NORTHWIND.open_ticket_ids[1]
    adapter = psa.adapter()
    for mode in modes:
        marker = f"jitadmin:lost-{psa.kind}-{mode}:revoked"
        psa.drop_after_commit(1, mode)
        with pytest.raises(TransientError):
            adapter.add_note(ticket, f"revoked\n[{marker}]")
        stored = [n for n in psa.stored_notes(ticket) if marker in n[1]]
        assert len(stored) == 1
        assert adapter.find_note(ticket, marker) == stored[0][0]
    assert len(psa.note_posts()) == len(modes)  # never retried blindly
    assert adapter.add_note(ticket, "the switch is used up\n[jitadmin:after:revoked]")


def test_invalid_note_is_rejected_with_the_vendors_reason(psa: Harness) -> None:
    overrides: dict[str, Any] = {"outcome_id": 9999} if psa.kind == "halopsa" else {}
    text = "a note [jitadmin:rejected:granted]" if psa.kind == "halopsa" else "   "
    with pytest.raises(RejectedError) as caught:
        psa.adapter(**overrides).add_note(PEDRO.open_ticket_ids[0], text)
    reason = {"connectwise": "serviceNote object is invalid", "autotask": "description",
              "halopsa": "Outcome 9999"}[psa.kind]  # fmt: skip
    assert reason in str(caught.value)
    assert len(psa.note_posts()) == 1


# --- failures and their messages --------------------------------------------------------


def test_wrong_secret_is_misconfigured_and_says_what_to_check(psa: Harness) -> None:
    with pytest.raises(MisconfiguredError) as caught:
        psa.adapter(secret="not-the-secret-123").get_ticket(PEDRO.open_ticket_ids[0])
    hint = {"connectwise": "API keys", "autotask": "integration code", "halopsa": "client_secret"}
    assert hint[psa.kind] in str(caught.value)
    with pytest.raises(MisconfiguredError):
        psa.adapter(secret="not-the-secret-123").check()


def test_forbidden_is_misconfigured(psa: Harness) -> None:
    psa.faults(error_status=403, match=psa.ticket_path)
    with pytest.raises(MisconfiguredError):
        psa.adapter().list_open_tickets("250")


def test_a_server_error_is_transient_and_reads_are_retried(psa: Harness) -> None:
    psa.faults(error_status=500, error_count=1, match=psa.ticket_path)
    assert psa.adapter().get_ticket(PEDRO.open_ticket_ids[0]).id == PEDRO.open_ticket_ids[0]
    statuses = [e["status"] for e in psa.requests("GET", psa.ticket_path)]
    assert statuses[:2] == [500, 200]
    psa.faults(error_status=502, error_count=None)
    with pytest.raises(TransientError) as caught:
        psa.adapter().get_ticket(PEDRO.open_ticket_ids[0])
    assert "502" in str(caught.value)


def test_429_honours_a_short_retry_after(psa: Harness) -> None:
    psa.faults(error_status=429, retry_after_s=2, match=psa.ticket_path)
    sleeps = Sleeps()
    with pytest.raises(TransientError) as caught:
        psa.adapter(sleep=sleeps).get_ticket(PEDRO.open_ticket_ids[0])
    assert caught.value.retry_after_s == 2
    assert sleeps.waits[-2:] == [2.0, 2.0]  # two retries, then the caller decides


def test_a_note_post_that_fails_is_never_retried(psa: Harness) -> None:
    psa.faults(error_status=500, match=psa.note_post_path)
    with pytest.raises(TransientError):
        psa.adapter().add_note(PEDRO.open_ticket_ids[0], "outcome unknown [jitadmin:p1:granted]")
    assert len(psa.note_posts()) == 1


def test_outage_and_unreachable_host_are_transient(psa: Harness) -> None:
    psa.faults(outage=True)
    with pytest.raises(TransientError) as caught:
        psa.adapter().list_open_tickets("250")
    assert "503" in str(caught.value)
    closed = f"http://127.0.0.1:{free_port()}/x"
    overrides = {"base_url": closed}
    with pytest.raises(TransientError) as refused:
        psa.adapter(**overrides).get_ticket("48211")
    assert refused.value.__cause__ is None
    assert refused.value.__context__ is None


def test_slow_answer_times_out_as_transient(psa: Harness) -> None:
    psa.faults(latency_ms=2000, match=psa.ticket_path)
    attempts: dict[str, Any] = {"get_attempts" if psa.kind == "connectwise" else "read_attempts": 1}
    with pytest.raises(TransientError) as caught:
        psa.adapter(timeout_s=0.3, **attempts).get_ticket(PEDRO.open_ticket_ids[0])
    assert "timed out" in str(caught.value)


def test_secrets_never_show_in_errors_or_repr(psa: Harness) -> None:
    wrong = "wrong-secret-value-123"
    errors: list[AdapterError] = []
    with pytest.raises(MisconfiguredError) as bad:
        psa.adapter(secret=wrong).get_ticket(PEDRO.open_ticket_ids[0])
    errors.append(bad.value)
    for settings in ({"error_status": 500}, {"error_status": 429, "retry_after_s": 1}):
        psa.faults(**settings, match=psa.note_post_path)
        with pytest.raises(TransientError) as caught:
            psa.adapter().add_note(PEDRO.open_ticket_ids[0], "x [jitadmin:s:granted]")
        errors.append(caught.value)
    adapter = psa.adapter()
    shown = [repr(adapter), str(adapter)] + [text for e in errors for text in (str(e), repr(e))]
    for text in shown:
        assert psa.secret not in text
        assert wrong not in text


def test_check_reports_what_it_found(psa: Harness) -> None:
    findings = psa.adapter().check()
    assert any("open tickets visible" in f for f in findings)
    assert all(psa.secret not in f for f in findings)


def test_credentials_never_follow_a_server_named_url_elsewhere(psa: Harness) -> None:
    """Each vendor names URLs in its answers (a Link, a nextPageUrl, an auth_url)."""
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return evil_answer(psa.kind, request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    base = {"connectwise": "https://psa.msp.example/v4_6_release/apis/3.0",
            "autotask": "https://webservices.autotask.net/ATServicesRest",
            "halopsa": "https://psa.msp.example"}[psa.kind]  # fmt: skip
    overrides: dict[str, Any] = {"base_url": base, "http": http}
    if psa.kind == "halopsa":
        # No tenant configured: the adapter asks authinfo, which names an evil auth server.
        overrides |= {"auth_url": "https://psa.msp.example/auth", "tenant": None}
    adapter = psa.adapter(**overrides)
    if psa.kind == "halopsa":
        assert adapter.list_open_tickets("250") == []
    else:
        with pytest.raises(MisconfiguredError):
            adapter.list_open_tickets("250")
    assert "evil.example" not in hosts
    assert hosts  # the adapter did talk to its own host


def evil_answer(kind: str, request: httpx.Request) -> httpx.Response:
    """A well-formed answer whose server-named URL points at evil.example."""
    path = request.url.path.rsplit("/", 1)[-1]
    if kind == "connectwise":
        link = '<https://evil.example/v4_6_release/apis/3.0/service/tickets?page=2>; rel="next"'
        return httpx.Response(200, json=[], headers={"Link": link})
    next_url = "https://evil.example/ATServicesRest/V1.0/Tickets/query/next?paging=x"
    token = {"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}
    answers: dict[str, dict[str, Any]] = {
        "zoneInformation": {"url": "https://webservices5.autotask.net/ATServicesRest/"},
        "ThresholdInformation": {
            "externalRequestThreshold": 10000, "currentTimeframeRequestCount": 1,
            "requestThresholdTimeframe": 60,
        },
        "query": {"items": [], "pageDetails": {
            "count": 0, "requestCount": 500, "prevPageUrl": None, "nextPageUrl": next_url,
        }},
        "authinfo": {"auth_url": "https://evil.example/auth", "tenant_id": "t"},
        "token": token,
    }  # fmt: skip
    return httpx.Response(200, json=answers.get(path, {"record_count": 0, "tickets": []}))
