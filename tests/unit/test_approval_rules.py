"""The approval rules on the grant and the policy check, without a database or a worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitadmin.core.errors import ConflictError, ForbiddenError, ValidationFailedError
from jitadmin.core.grant import FINISHED, NEVER_PROVISIONED, WORKER, Grant, GrantState
from jitadmin.core.policy import ApprovalPolicy, check_policy

S = GrantState
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
KINDS = ("m365", "ad")


def state_of(g: Grant) -> GrantState:
    """The state read afresh (mypy would keep an earlier ``is`` check's narrowing)."""
    return g.state


def pending(needed: int = 1, timeout: int = 60) -> Grant:
    g = Grant(
        id="g-1", customer="pedroaviary", identity_provider="m365", ticket_id="48211",
        requester="tech@msp.example", reason="patching", duration_minutes=30,
        created_at=NOW, expires_at=NOW + timedelta(minutes=30),
    )  # fmt: skip
    event = g.await_approval(needed, timeout, at=NOW)
    assert event.kind == "grant.pending_approval"
    assert event.data["approvals_needed"] == needed
    return g


def test_a_pending_request_is_not_worker_work_until_its_window_is_over() -> None:
    g = pending(timeout=10)
    assert g.state is S.PENDING_APPROVAL and g.state not in WORKER
    assert g.next_attempt_at is None
    assert not g.needs_worker(NOW + timedelta(minutes=9))
    assert g.needs_worker(NOW + timedelta(minutes=10))


def test_the_last_approval_passes_through_approved_to_provisioning() -> None:
    g = pending(needed=2)
    (given,) = g.approve(actor="a1", comment=None, at=NOW)
    assert given.kind == "grant.approval_given" and g.state is S.PENDING_APPROVAL
    later = NOW + timedelta(minutes=1)
    approved, provisioning = g.approve(actor="a2", comment="ok", at=later)
    assert approved.kind == "grant.approved" and approved.data["approvers"] == ["a1", "a2"]
    assert provisioning.kind == "grant.provisioning"
    assert state_of(g) is S.PROVISIONING and g.next_attempt_at == later


def test_nobody_approves_their_own_request_or_twice() -> None:
    g = pending(needed=2)
    with pytest.raises(ForbiddenError):
        g.approve(actor="tech@msp.example", comment=None, at=NOW)
    g.approve(actor="a1", comment=None, at=NOW)
    with pytest.raises(ConflictError, match="already approved"):
        g.approve(actor="a1", comment=None, at=NOW)
    assert g.approvers == ["a1"]


def test_a_rejection_needs_a_comment_and_is_final() -> None:
    g = pending()
    with pytest.raises(ValidationFailedError) as refused:
        g.reject(actor="a1", comment="  ", at=NOW)
    assert refused.value.problems[0].field == "comment" and g.state is S.PENDING_APPROVAL
    event = g.reject(actor="a1", comment=" no ticket scope ", at=NOW)
    assert event.data["comment"] == "no ticket scope" and state_of(g) is S.REJECTED
    with pytest.raises(ConflictError):
        g.approve(actor="a2", comment=None, at=NOW)


def test_cancel_only_while_pending() -> None:
    g = pending()
    assert g.cancel(actor="tech@msp.example", at=NOW).kind == "grant.cancelled"
    with pytest.raises(ConflictError, match="only a pending_approval"):
        g.cancel(actor="tech@msp.example", at=NOW)


def test_the_window_closes_decisions_and_expires_the_request() -> None:
    g = pending(timeout=30)
    assert g.expire_approval(NOW + timedelta(minutes=29)) is None
    end = NOW + timedelta(minutes=30)
    with pytest.raises(ConflictError, match="expired"):
        g.approve(actor="a1", comment=None, at=end)
    event = g.expire_approval(end)
    assert event is not None and event.kind == "grant.expired" and state_of(g) is S.EXPIRED


def test_a_pending_request_is_cancelled_not_revoked() -> None:
    g = pending()
    with pytest.raises(ConflictError, match="/cancel"):
        g.request_revoke(actor="tech@msp.example", at=NOW)


def test_the_ends_without_provisioning_are_finished() -> None:
    assert {S.REJECTED, S.CANCELLED, S.EXPIRED, S.DENIED} == NEVER_PROVISIONED
    assert NEVER_PROVISIONED <= FINISHED


def test_check_policy_names_every_broken_field() -> None:
    with pytest.raises(ValidationFailedError) as refused:
        check_policy(
            max_duration_minutes=0, approval_required="m365", approvals_needed=True,
            approval_timeout_minutes=10_081, known_identity_providers=KINDS,
        )  # fmt: skip
    assert sorted(p.field for p in refused.value.problems) == [
        "approval_required", "approval_timeout_minutes", "approvals_needed",
        "max_duration_minutes",
    ]  # fmt: skip


def test_check_policy_sorts_and_dedupes_the_identity_providers() -> None:
    policy = check_policy(
        max_duration_minutes=120, approval_required=["m365", "ad", "m365"], approvals_needed=2,
        approval_timeout_minutes=45, known_identity_providers=KINDS,
    )  # fmt: skip
    assert policy == ApprovalPolicy(120, ("ad", "m365"), 2, 45)
    assert policy.needs_approval("ad") and not ApprovalPolicy().needs_approval("ad")
