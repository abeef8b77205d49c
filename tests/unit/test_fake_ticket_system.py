"""jitadmin.testing.FakeTicketSystem answers like the PSA adapters, and its switches work.

(The behaviour half of the ticket-system contract asks it the PSA adapters' questions too:
tests/contract/psa/test_ticket_systems.py, TestTheFake.)
"""

from __future__ import annotations

import pytest

from jitadmin.core.errors import AdapterNotFoundError, RejectedError, TransientError
from jitadmin.testing import FakeTicket, FakeTicketSystem


def test_open_tickets_of_one_company_newest_first() -> None:
    psa = FakeTicketSystem()
    older = psa.add_ticket("250", "printer")
    newer = psa.add_ticket("250", "backup")
    psa.add_ticket("250", "done", closed=True)
    psa.add_ticket("251", "someone else's")
    assert [t.id for t in psa.list_open_tickets("250")] == [newer, older]
    assert psa.list_open_tickets("999") == []
    psa.close_ticket(newer)
    assert psa.get_ticket(newer).is_closed is True
    assert [t.id for t in psa.list_open_tickets("250")] == [older]


def test_a_new_ticket_never_replaces_one_put_in_directly() -> None:
    psa = FakeTicketSystem()
    psa.tickets["48211"] = FakeTicket("48211", "seeded", "250")
    added = psa.add_ticket("250", "added")
    assert int(added) > 48211
    assert [t.id for t in psa.list_open_tickets("250")] == [added, "48211"]


def test_an_unknown_ticket_is_not_found() -> None:
    psa = FakeTicketSystem()
    with pytest.raises(AdapterNotFoundError):
        psa.get_ticket("1")
    with pytest.raises(AdapterNotFoundError):
        psa.add_note("1", "x\n[jitadmin:g:granted]")


def test_a_marker_counts_only_as_the_notes_last_line() -> None:
    psa = FakeTicketSystem()
    ticket = psa.add_ticket("250", "t")
    psa.seed_note(ticket, "quoting\n[jitadmin:a:revoked]\nand more")
    psa.seed_note(ticket, "upper\n[JITADMIN:A:REVOKED]")
    assert psa.find_note(ticket, "jitadmin:a:revoked") is None
    note = psa.add_note(ticket, "Global Admin removed.\n[jitadmin:a:revoked]")
    assert psa.find_note(ticket, "jitadmin:a:revoked") == note
    with pytest.raises(ValueError, match="marker"):
        psa.find_note(ticket, "")


def test_a_blank_note_is_rejected_and_a_closed_ticket_still_takes_notes() -> None:
    psa = FakeTicketSystem()
    ticket = psa.add_ticket("250", "t", closed=True)
    with pytest.raises(RejectedError):
        psa.add_note(ticket, "   ")
    psa.add_note(ticket, "revoked\n[jitadmin:g:revoked]")
    assert psa.notes(ticket) == ["revoked\n[jitadmin:g:revoked]"]


def test_a_lost_answer_leaves_the_note_stored_and_findable() -> None:
    psa = FakeTicketSystem()
    ticket = psa.add_ticket("250", "t")
    psa.faults.fail_next(TransientError("timed out"), on="add_note", after_effect=True)
    with pytest.raises(TransientError):
        psa.add_note(ticket, "granted\n[jitadmin:g:granted]")
    assert psa.notes(ticket) == ["granted\n[jitadmin:g:granted]"]
    assert psa.find_note(ticket, "jitadmin:g:granted") is not None


def test_planned_failures_hit_only_their_operation_and_then_stop() -> None:
    psa = FakeTicketSystem()
    ticket = psa.add_ticket("250", "t")
    psa.faults.fail_next(TransientError("503"), on="get_ticket", times=2)
    assert psa.list_open_tickets("250")  # another operation is not affected
    for _ in range(2):
        with pytest.raises(TransientError, match="503"):
            psa.get_ticket(ticket)
    assert psa.get_ticket(ticket).id == ticket
    assert psa.faults.count("get_ticket") == 3
    psa.faults.fail_next(TransientError("down"), times=None)
    for _ in range(3):
        with pytest.raises(TransientError):
            psa.check()
    psa.faults.clear()
    assert psa.check() == ["1 open tickets visible"]
