"""The lifecycle rules on the domain object, without a database or a worker."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from jitadmin.core.errors import ConflictError, InvalidTransitionError, ValidationFailedError
from jitadmin.core.grant import (
    FINISHED,
    LEASED,
    LIVE,
    REVOCABLE,
    REVOCATION_PENDING,
    UNFINISHED,
    WORKER,
    Failure,
    Grant,
    GrantState,
    WorkerTuning,
)
from jitadmin.core.retry import MAX_RETRY_AFTER_S, MAX_REVOKE_RETRY_AFTER_S, RetryPolicy

S = GrantState
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
TUNING = WorkerTuning(provision_max_attempts=3, revoke_max_attempts=2, revoke_failed_interval_s=300)
FLAT = RetryPolicy(base_s=2, cap_s=120, jitter=0)  # no jitter: delays are exact


def grant(state: GrantState = S.ACTIVE, minutes: int = 30) -> Grant:
    return Grant(
        id="g-1", customer="pedroaviary", identity_provider="m365", ticket_id="48211",
        requester="tech@msp.example", reason="patching", duration_minutes=minutes,
        created_at=NOW, expires_at=NOW + timedelta(minutes=minutes), state=state,
        activated_at=NOW if state is S.ACTIVE else None,
    )  # fmt: skip


def state_of(g: Grant) -> GrantState:
    """The state now (a call, so the type checker does not carry an earlier check over)."""
    return g.state


def fail(g: Grant, failure: Failure | None = None, at: datetime = NOW) -> list[str]:
    events = g.record_failure(failure or Failure("503"), at=at, tuning=TUNING, retry=FLAT)
    return [e.kind for e in events]


# -- the named sets ------------------------------------------------------------------------


def test_every_state_is_finished_or_unfinished_and_never_both() -> None:
    assert set(GrantState) == FINISHED | UNFINISHED
    assert not FINISHED & UNFINISHED


def test_the_sets_nest_as_their_names_say() -> None:
    assert LIVE <= UNFINISHED and REVOCATION_PENDING <= UNFINISHED
    assert not LIVE & REVOCATION_PENDING
    assert {S.PROVISIONING} | REVOCATION_PENDING == WORKER
    # The worker never drives a pending request; it leases one only to expire it.
    assert S.PENDING_APPROVAL not in WORKER
    assert WORKER | {S.ACTIVE, S.PENDING_APPROVAL} == LEASED
    assert REVOCABLE <= UNFINISHED and not REVOCABLE & REVOCATION_PENDING


# -- expire -------------------------------------------------------------------------------


def test_an_active_grant_expires_at_its_end_and_not_before() -> None:
    g = grant()
    assert g.expire(g.expires_at - timedelta(seconds=1)) is None
    assert state_of(g) is S.ACTIVE
    event = g.expire(g.expires_at)
    assert event is not None and event.kind == "grant.revoking"
    assert event.actor == "system:expiry" and event.data["trigger"] == "expiry"
    assert g.state is S.REVOKING and g.next_attempt_at == g.expires_at


@pytest.mark.parametrize("state", sorted(set(GrantState) - {S.ACTIVE}))
def test_only_active_grants_expire(state: GrantState) -> None:
    g = grant(state)
    assert g.expire(NOW + timedelta(days=1)) is None
    assert g.state is state


def test_activation_starts_the_clock_when_access_exists() -> None:
    g = grant(S.PROVISIONING)
    later = NOW + timedelta(minutes=7)
    event = g.activate("jit-1@t.example", {"user_id": "u-1"}, actor="system:worker", at=later)
    assert g.state is S.ACTIVE and g.activated_at == later
    assert g.expires_at == later + timedelta(minutes=30)
    assert g.account == {"user_id": "u-1"} and event.data["username"] == "jit-1@t.example"


# -- revoke now ---------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(REVOCABLE))
def test_revocable_grants_start_revoking(state: GrantState) -> None:
    g = grant(state)
    event = g.request_revoke(actor="tech@msp.example", at=NOW)
    assert event is not None and event.data["trigger"] == "revoke"
    assert g.state is S.REVOKING and g.revoke_requested_by == "tech@msp.example"


@pytest.mark.parametrize("state", sorted(REVOCATION_PENDING | {S.REVOKED}))
def test_asking_again_to_revoke_changes_nothing(state: GrantState) -> None:
    g = grant(state)
    assert g.request_revoke(actor="tech@msp.example", at=NOW) is None
    assert g.state is state and g.revoke_requested_by is None


@pytest.mark.parametrize("state", [S.REQUESTED, S.PENDING_APPROVAL, S.APPROVED, S.DENIED])
def test_other_grants_cannot_be_revoked(state: GrantState) -> None:
    g = grant(state)
    with pytest.raises(ConflictError, match="cannot be revoked"):
        g.request_revoke(actor="tech@msp.example", at=NOW)
    assert g.state is state


# -- extend -------------------------------------------------------------------------------


def test_extend_is_capped_on_the_whole_life_from_activation() -> None:
    g = grant(minutes=60)
    assert g.check_extension(60, maximum_minutes=120) == NOW + timedelta(minutes=120)
    with pytest.raises(ValidationFailedError) as refused:
        g.check_extension(61, maximum_minutes=120)
    assert refused.value.problems[0].field == "minutes"
    assert "120 minutes from its activation" in refused.value.problems[0].rule


def test_repeated_extends_do_not_add_up_past_the_cap() -> None:
    g = grant(minutes=60)
    for number in (1, 2):
        until = g.check_extension(30, maximum_minutes=120)
        event = g.extend(30, until=until, actor="tech@msp.example", at=NOW)
        assert g.extensions == number and g.steps[-1] == f"extended-{number}"
        assert event.data["to"] == until.isoformat()
    assert g.expires_at == NOW + timedelta(minutes=120) and g.duration_minutes == 120
    with pytest.raises(ValidationFailedError):
        g.check_extension(1, maximum_minutes=120)


def test_the_cap_counts_from_activation_not_from_the_request() -> None:
    g = grant(minutes=60)
    g.activated_at = NOW + timedelta(minutes=20)
    g.expires_at = g.activated_at + timedelta(minutes=60)
    assert g.check_extension(60, maximum_minutes=120) == g.activated_at + timedelta(minutes=120)


@pytest.mark.parametrize("state", sorted(set(GrantState) - {S.ACTIVE}))
def test_only_active_grants_can_be_extended(state: GrantState) -> None:
    with pytest.raises(ConflictError, match="only an active grant"):
        grant(state).check_extension(10, maximum_minutes=480)


# -- record_failure -----------------------------------------------------------------------


def test_provisioning_failures_back_off_then_fail_and_clean_up() -> None:
    g = grant(S.PROVISIONING)
    assert fail(g) == ["grant.attempt_failed"]
    assert g.attempts == 1 and g.last_error == "503"
    assert g.next_attempt_at == NOW + timedelta(seconds=2)
    fail(g)
    assert g.next_attempt_at == NOW + timedelta(seconds=4)  # doubled
    assert fail(g) == ["grant.failed", "grant.revoking", "grant.attempt_failed"]
    assert g.state is S.REVOKING and g.attempts == 0 and g.last_error == "503"
    assert g.next_attempt_at == NOW  # the cleanup starts at once


def test_a_permanent_error_fails_provisioning_at_once() -> None:
    g = grant(S.PROVISIONING)
    assert fail(g, Failure("no such role", permanent=True))[:2] == [
        "grant.failed",
        "grant.revoking",
    ]


def test_revocation_turns_revoke_failed_after_its_budget_and_keeps_trying() -> None:
    g = grant(S.REVOKING)
    fail(g)
    assert state_of(g) is S.REVOKING and g.next_attempt_at == NOW + timedelta(seconds=2)
    assert fail(g) == ["grant.revoke_failed", "grant.attempt_failed"]
    assert g.state is S.REVOKE_FAILED and g.last_error == "503"
    assert g.next_attempt_at == NOW + timedelta(seconds=300)
    fail(g, Failure("429", retry_after_s=900))
    assert g.state is S.REVOKE_FAILED and g.next_attempt_at == NOW + timedelta(seconds=900)


def test_a_refused_revocation_turns_revoke_failed_at_once() -> None:
    g = grant(S.REVOKING)
    assert fail(g, Failure("another tenant", refused=True))[0] == "grant.revoke_failed"


def test_backoff_honours_retry_after_within_the_limit_of_the_work() -> None:
    provisioning = grant(S.PROVISIONING)
    fail(provisioning, Failure("429", retry_after_s=50))
    assert provisioning.next_attempt_at == NOW + timedelta(seconds=50)
    fail(provisioning, Failure("429", retry_after_s=1e9))
    assert provisioning.next_attempt_at == NOW + timedelta(seconds=MAX_RETRY_AFTER_S)
    revoking = grant(S.REVOKING)
    fail(revoking, Failure("429", retry_after_s=1e9))
    assert revoking.next_attempt_at == NOW + timedelta(seconds=MAX_REVOKE_RETRY_AFTER_S)


def test_an_expiry_whose_start_failed_is_revocation_work() -> None:
    g = grant()
    assert g.needs_worker(g.expires_at) and not g.needs_worker(NOW)
    assert g.retry_limit_s == MAX_REVOKE_RETRY_AFTER_S
    fail(g, at=g.expires_at)
    assert g.state is S.ACTIVE and g.attempts == 1


def test_jitter_stays_within_a_quarter_of_the_delay() -> None:
    g = grant(S.PROVISIONING)
    g.record_failure(Failure("503"), at=NOW, tuning=TUNING, retry=RetryPolicy(base_s=8, cap_s=120))
    assert g.next_attempt_at is not None
    assert 6 <= (g.next_attempt_at - NOW).total_seconds() <= 10
    assert RetryPolicy(base_s=8).delay(1, rng=random.Random(1)) <= 10


def test_a_new_state_starts_a_new_budget() -> None:
    g = grant(S.REVOKING)
    fail(g)
    g.transition(S.REVOKED, actor="system:worker", at=NOW)
    assert g.attempts == 0 and g.last_error is None and g.is_finished


# -- the drift flag -----------------------------------------------------------------------


def test_the_drift_flag_is_its_own_field_and_shows_as_before() -> None:
    g = grant()
    g.flag_access_missing(NOW)
    assert g.access_missing and g.last_error is None
    assert g.shown_error == (
        "drift: admin access not found on the target at 2026-12-03T09:00:00+00:00; "
        "the grant stays active and still ends on time"
    )
    g.clear_access_missing()
    assert not g.access_missing and g.shown_error is None


def test_a_worker_error_is_shown_before_the_drift_flag_and_a_move_clears_the_flag() -> None:
    g = grant()
    g.flag_access_missing(NOW)
    fail(g, at=g.expires_at)
    assert g.shown_error == "503" and g.access_missing
    g.expire(g.expires_at)
    assert not g.access_missing and g.shown_error is None


@pytest.mark.parametrize("state", sorted(set(GrantState) - {S.ACTIVE}))
def test_only_an_active_grant_can_be_flagged(state: GrantState) -> None:
    g = grant(state)
    with pytest.raises(InvalidTransitionError):
        g.flag_access_missing(NOW)
    assert not g.access_missing
