"""The TicketSystem contract: what every ticket system must do, in two halves.

``TicketSystemBehaviour`` is what any ``TicketSystem`` must do, whatever it talks to: open
tickets of one company newest first with number and summary (all of them, however many), owner
and open state of one ticket, notes posted internally and found again by their marker (only as
a note's last line, never quoted), a refused note rejected with the reason. The in-memory
``jitadmin.testing.FakeTicketSystem`` runs this half (``support.psa_harness.FakeHarness``).

``TicketSystemHttp`` is what an adapter over a vendor's HTTP API must do on top: every failure
(faults, lost answers, throttling, timeouts, an unreachable host) mapped to the adapter error
taxonomy with a message a person can act on, reads retried and note POSTs never, never a secret
in an error, and credentials never sent to a URL a server names. ``TicketSystemContract`` is
both, run against every PSA's emulator over real HTTP.

Where vendors differ on purpose (ticket numbers, how a note is kept internal, their error texts)
the vendor's ``PsaExpectations`` says so. A suite subclasses one of the classes and provides the
``psa`` fixture: tests/contract/psa/test_ticket_systems.py does it for every registered PSA and
for the fake, and a new PSA's tests may do it for theirs alone.
"""

from __future__ import annotations

from typing import Any, Protocol

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
from jitadmin.ports import TicketSystem

from support.psa_expectations import (
    PsaExpectations,
    TicketExpectations,
    expectations,
    http_expectations,
)
from support.psa_harness import Harness, Sleeps

PEDRO, NORTHWIND = CUSTOMERS
SUMMARIES = {str(t.id): t.summary for c in CUSTOMERS for t in c.tickets}


class TicketHarness(Protocol):
    """What the behaviour half asks of a harness: the system under test and its ground truth.

    The seed customers' tickets (``CUSTOMERS``) and the paging customer (252) must exist.
    """

    kind: str

    @property
    def paged(self) -> bool:
        """Whether a listing comes in pages (one ``listing_requests`` entry each)."""
        ...

    def adapter(self, **overrides: Any) -> TicketSystem: ...

    def add_ticket(self, company_id: int, summary: str, *, closed: bool = False) -> int: ...

    def close_ticket(self, ticket_id: int) -> None: ...

    def seed_note(self, ticket_id: int, text: str) -> None: ...

    def stored_notes(self, ticket_id: str) -> list[tuple[str, str]]: ...

    def note_posts(self) -> list[dict[str, Any]]:
        """One entry per note written (``body``: what was sent, if anything was)."""
        ...

    def listing_requests(self) -> list[dict[str, Any]]: ...


def ticket_expect(psa: TicketHarness) -> TicketExpectations:
    return expectations(psa.kind)


def psa_expect(psa: Harness) -> PsaExpectations:
    return http_expectations(psa.kind)


def desc(ids: list[str]) -> list[str]:
    return sorted(ids, key=int, reverse=True)


class TicketSystemBehaviour:
    """What any TicketSystem must do; a subclass provides the ``psa`` fixture."""

    # --- the ticket picker and the submit-time check ---

    def test_open_tickets_newest_first_with_number_and_summary(self, psa: TicketHarness) -> None:
        tickets = psa.adapter().list_open_tickets(str(PEDRO.psa_company_id))
        assert [t.id for t in tickets] == desc(PEDRO.open_ticket_ids)
        for ticket in tickets:
            assert ticket.summary == SUMMARIES[ticket.id]
            assert (ticket.company_id, ticket.is_closed) == ("250", False)
            assert ticket.status and ticket.status not in {"Closed", "Complete"}
        ticket_expect(psa).check_numbers([t.number for t in tickets], [t.id for t in tickets])

    def test_only_that_companys_open_tickets(self, psa: TicketHarness) -> None:
        tickets = psa.adapter().list_open_tickets(str(NORTHWIND.psa_company_id))
        assert [t.id for t in tickets] == desc(NORTHWIND.open_ticket_ids)
        assert psa.adapter().list_open_tickets("999") == []

    def test_listing_follows_every_page(self, psa: TicketHarness) -> None:
        opened = [psa.add_ticket(252, f"bulk {i}") for i in range(520)]
        for i in range(5):
            psa.add_ticket(252, f"done {i}", closed=True)
        tickets = psa.adapter().list_open_tickets("252")
        assert [int(t.id) for t in tickets] == sorted(opened, reverse=True)
        if psa.paged:
            assert len(psa.listing_requests()) >= 2  # 520 never fit one page

    def test_ticket_owner_and_open_state(self, psa: TicketHarness) -> None:
        adapter = psa.adapter()
        other = adapter.get_ticket(NORTHWIND.open_ticket_ids[0])
        assert (other.company_id, other.is_closed) == ("251", False)
        closed = adapter.get_ticket(PEDRO.closed_ticket_ids[0])
        assert (closed.company_id, closed.is_closed) == ("250", True)
        for unknown in ("1", "../service", "12a"):
            with pytest.raises(AdapterNotFoundError):
                adapter.get_ticket(unknown)

    def test_a_ticket_closed_after_listing_reads_closed(self, psa: TicketHarness) -> None:
        ticket_id = psa.add_ticket(251, "closes soon")
        adapter = psa.adapter()
        assert str(ticket_id) in [t.id for t in adapter.list_open_tickets("251")]
        psa.close_ticket(ticket_id)
        assert adapter.get_ticket(str(ticket_id)).is_closed is True
        assert str(ticket_id) not in [t.id for t in adapter.list_open_tickets("251")]

    # --- notes ---

    def test_note_is_internal_and_found_again_by_marker(self, psa: TicketHarness) -> None:
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
        ticket_expect(psa).assert_internal(post["body"])

    def test_find_note_matches_the_marker_exactly_on_every_page(self, psa: TicketHarness) -> None:
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

    def test_a_marker_quoted_in_another_note_never_counts(self, psa: TicketHarness) -> None:
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

    def test_invalid_note_is_rejected_with_the_vendors_reason(self, psa: TicketHarness) -> None:
        invalid = ticket_expect(psa).invalid_note
        with pytest.raises(RejectedError) as caught:
            psa.adapter(**invalid.overrides).add_note(PEDRO.open_ticket_ids[0], invalid.text)
        assert invalid.reason in str(caught.value)
        assert len(psa.note_posts()) == 1


class TicketSystemHttp:
    """What an adapter over a vendor's HTTP API must do besides; the ``psa`` fixture is a
    ``Harness`` (support.psa_harness) on the vendor's emulator."""

    # --- notes whose answer is lost ---

    def test_lost_answer_after_commit_leaves_one_findable_note(self, psa: Harness) -> None:
        # "500": stored, then a server error; "drop": stored, then the connection cut mid-answer
        # (each emulator says which it has).
        modes = list(psa.paths.drop_modes)
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

    # --- failures and their messages ---

    def test_wrong_secret_is_misconfigured_and_says_what_to_check(self, psa: Harness) -> None:
        with pytest.raises(MisconfiguredError) as caught:
            psa.adapter(secret="not-the-secret-123").get_ticket(PEDRO.open_ticket_ids[0])
        assert psa_expect(psa).wrong_secret_hint in str(caught.value)
        with pytest.raises(MisconfiguredError):
            psa.adapter(secret="not-the-secret-123").check()

    def test_forbidden_is_misconfigured(self, psa: Harness) -> None:
        psa.faults(error_status=403, match=psa.ticket_path)
        with pytest.raises(MisconfiguredError):
            psa.adapter().list_open_tickets("250")

    def test_a_server_error_is_transient_and_reads_are_retried(self, psa: Harness) -> None:
        psa.faults(error_status=500, error_count=1, match=psa.ticket_path)
        assert psa.adapter().get_ticket(PEDRO.open_ticket_ids[0]).id == PEDRO.open_ticket_ids[0]
        statuses = [e["status"] for e in psa.requests("GET", psa.ticket_path)]
        assert statuses[:2] == [500, 200]
        psa.faults(error_status=502, error_count=None)
        with pytest.raises(TransientError) as caught:
            psa.adapter().get_ticket(PEDRO.open_ticket_ids[0])
        assert "502" in str(caught.value)

    def test_429_honours_a_short_retry_after(self, psa: Harness) -> None:
        psa.faults(error_status=429, retry_after_s=2, match=psa.ticket_path)
        sleeps = Sleeps()
        with pytest.raises(TransientError) as caught:
            psa.adapter(sleep=sleeps).get_ticket(PEDRO.open_ticket_ids[0])
        assert caught.value.retry_after_s == 2
        assert sleeps.waits[-2:] == [2.0, 2.0]  # two retries, then the caller decides

    def test_a_note_post_that_fails_is_never_retried(self, psa: Harness) -> None:
        psa.faults(error_status=500, match=psa.note_post_path)
        with pytest.raises(TransientError):
            psa.adapter().add_note(
                PEDRO.open_ticket_ids[0], "outcome unknown [jitadmin:p1:granted]"
            )
        assert len(psa.note_posts()) == 1

    def test_outage_and_unreachable_host_are_transient(self, psa: Harness) -> None:
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

    def test_slow_answer_times_out_as_transient(self, psa: Harness) -> None:
        psa.faults(latency_ms=2000, match=psa.ticket_path)
        attempts = psa_expect(psa).one_read_attempt
        with pytest.raises(TransientError) as caught:
            psa.adapter(timeout_s=0.3, **attempts).get_ticket(PEDRO.open_ticket_ids[0])
        assert "timed out" in str(caught.value)

    def test_secrets_never_show_in_errors_or_repr(self, psa: Harness) -> None:
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

    def test_check_reports_what_it_found(self, psa: Harness) -> None:
        findings = psa.adapter().check()
        assert any("open tickets visible" in f for f in findings)
        assert all(psa.secret not in f for f in findings)

    def test_credentials_never_follow_a_server_named_url_elsewhere(self, psa: Harness) -> None:
        """Each vendor names URLs in its answers (a Link, a nextPageUrl, an auth_url)."""
        evil = psa_expect(psa).evil
        hosts: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            hosts.append(request.url.host)
            return evil.answer(request)

        http = httpx.Client(transport=httpx.MockTransport(handler))
        adapter = psa.adapter(base_url=evil.base_url, http=http, **evil.overrides)
        if evil.refused:
            with pytest.raises(MisconfiguredError):
                adapter.list_open_tickets("250")
        else:
            assert adapter.list_open_tickets("250") == []
        assert "evil.example" not in hosts
        assert hosts  # the adapter did talk to its own host


class TicketSystemContract(TicketSystemBehaviour, TicketSystemHttp):
    """The whole contract, for a PSA adapter against its emulator over HTTP."""
