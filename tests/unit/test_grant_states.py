"""The transition table: every legal move works, every other one is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitadmin.core.errors import InvalidTransitionError
from jitadmin.core.grant import TRANSITIONS, Grant, GrantState, can_transition

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ALL_PAIRS = [(a, b) for a in GrantState for b in GrantState]
LEGAL = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
ILLEGAL = [(a, b) for a, b in ALL_PAIRS if b not in TRANSITIONS[a]]


def make_grant(state: GrantState) -> Grant:
    return Grant(
        id="g-1", customer="pedroaviary", identity_provider="m365", ticket_id="48211",
        requester="tech@msp.example", reason="patching the DCs", duration_minutes=30,
        created_at=NOW, expires_at=NOW + timedelta(minutes=30), state=state,
    )  # fmt: skip


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(GrantState)


@pytest.mark.parametrize(("current", "target"), LEGAL)
def test_legal_transition_moves_and_returns_its_event(
    current: GrantState, target: GrantState
) -> None:
    grant = make_grant(current)
    grant.attempts = 3
    event = grant.transition(target, actor="someone", at=NOW)
    assert grant.state is target
    assert grant.attempts == 0
    assert event.kind == f"grant.{target.value}"
    assert event.data["from"] == current.value and event.data["to"] == target.value
    assert event.actor == "someone" and event.at == NOW and event.grant_id == "g-1"


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_illegal_transition_is_refused_and_changes_nothing(
    current: GrantState, target: GrantState
) -> None:
    grant = make_grant(current)
    with pytest.raises(InvalidTransitionError):
        grant.transition(target, actor="someone", at=NOW)
    assert grant.state is current
    assert not can_transition(current, target)


def test_revoked_and_denied_are_final() -> None:
    assert TRANSITIONS[GrantState.REVOKED] == frozenset()
    assert TRANSITIONS[GrantState.DENIED] == frozenset()


def test_revoked_is_reachable_only_through_revocation() -> None:
    sources = {a for a, b in LEGAL if b is GrantState.REVOKED}
    assert sources == {GrantState.REVOKING, GrantState.REVOKE_FAILED}


def test_activation_and_revocation_stamp_their_times() -> None:
    grant = make_grant(GrantState.PROVISIONING)
    grant.transition(GrantState.ACTIVE, actor="w", at=NOW)
    assert grant.activated_at == NOW and grant.next_attempt_at is None
    later = NOW + timedelta(minutes=5)
    grant.transition(GrantState.REVOKING, actor="w", at=later)
    assert grant.next_attempt_at == later
    grant.transition(GrantState.REVOKED, actor="w", at=later)
    assert grant.revoked_at == later and grant.is_finished
