"""The grant and its lifecycle: when and why a grant moves, in one file.

```
requested ──▶ provisioning ──▶ active ──(expires_at | revoke)──▶ revoking ──▶ revoked
    │  │            │                                               └──▶ revoke_failed ──▶ revoked
    │  │            └──▶ failed ──▶ revoking (clean up whatever was half made)
    │  └──▶ pending_approval ──(enough approvals)──▶ approved ──▶ provisioning
    │              └──▶ rejected / cancelled / expired (nothing was created in the target)
    └──▶ denied
```
Every move goes through :meth:`Grant.transition`, which refuses anything not in the table and
returns the audit event that must be stored in the same transaction. The rules people and the
worker apply are methods too: :meth:`Grant.activate` (the clock starts when access exists),
:meth:`Grant.expire`, :meth:`Grant.request_revoke`, :meth:`Grant.check_extension` and
:meth:`Grant.extend` (capped on the whole life, from activation), :meth:`Grant.record_failure`
(count the attempt, back off, or move on when out of budget) and the drift flag
(:meth:`Grant.flag_access_missing`, kept apart from the worker's ``last_error``) and the approval
rules (:meth:`Grant.await_approval`, :meth:`Grant.approve`, :meth:`Grant.reject`,
:meth:`Grant.cancel`, :meth:`Grant.expire_approval`). The named state
sets below are the only definitions of "finished", "unfinished", "live" and the like; the
database queries filter with the same sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from jitadmin.core.clock import iso
from jitadmin.core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidTransitionError,
    ValidationFailedError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.core.retry import MAX_RETRY_AFTER_S, MAX_REVOKE_RETRY_AFTER_S, RetryPolicy


class GrantState(StrEnum):
    REQUESTED = "requested"
    PENDING_APPROVAL = "pending_approval"
    # Passed through in the commit of the last approval, on the way to provisioning.
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # no decision within the approval window
    DENIED = "denied"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FAILED = "failed"
    REVOKING = "revoking"
    REVOKE_FAILED = "revoke_failed"
    REVOKED = "revoked"


S = GrantState

TRANSITIONS: dict[GrantState, frozenset[GrantState]] = {
    S.REQUESTED: frozenset({S.PROVISIONING, S.PENDING_APPROVAL, S.DENIED}),
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED, S.EXPIRED, S.DENIED}),
    S.APPROVED: frozenset({S.PROVISIONING}),
    S.DENIED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
    # A revoke asked for while provisioning goes straight to cleaning up.
    S.PROVISIONING: frozenset({S.ACTIVE, S.FAILED, S.REVOKING}),
    S.ACTIVE: frozenset({S.REVOKING}),
    S.FAILED: frozenset({S.REVOKING}),
    S.REVOKING: frozenset({S.REVOKED, S.REVOKE_FAILED}),
    S.REVOKE_FAILED: frozenset({S.REVOKED}),
    S.REVOKED: frozenset(),
}

# Ended before anything was created in the target: refused, rejected, cancelled, expired.
NEVER_PROVISIONED = frozenset({S.DENIED, S.REJECTED, S.CANCELLED, S.EXPIRED})
# Nothing more will happen to the grant: it was refused, or its revocation was verified.
FINISHED = frozenset({S.REVOKED} | NEVER_PROVISIONED)
# Everything else: the target may hold something of it until a verified revocation.
UNFINISHED = frozenset(set(GrantState) - FINISHED)
# The target holds, or is about to hold, admin rights for it: a second grant of the same
# requester, customer and identity provider is refused while one is live.
LIVE = frozenset({S.REQUESTED, S.PENDING_APPROVAL, S.APPROVED, S.PROVISIONING, S.ACTIVE})
# Asked to end, not yet verified gone.
REVOCATION_PENDING = frozenset({S.REVOKING, S.REVOKE_FAILED})
# The worker drives these forward (``next_attempt_at`` says when).
WORKER = frozenset({S.PROVISIONING} | REVOCATION_PENDING)
# A worker may hold a lease on these: the ones it drives, active grants due to expire, and
# requests whose approval window is over (only to expire them: nothing is provisioned).
LEASED = frozenset(WORKER | {S.ACTIVE, S.PENDING_APPROVAL})
# Must be over by ``expires_at``: still active, or on the way out.
MUST_END_BY_EXPIRY = frozenset({S.ACTIVE} | REVOCATION_PENDING)
# A person may ask for these to be revoked now.
REVOCABLE = frozenset({S.PROVISIONING, S.ACTIVE, S.FAILED})

# Actors of the moves the system makes by itself.
EXPIRY = "system:expiry"
WORKER_ACTOR = "system:worker"
POLICY_ACTOR = "system:policy"


def can_transition(current: GrantState, target: GrantState) -> bool:
    return target in TRANSITIONS[current]


def values(states: frozenset[GrantState]) -> list[str]:
    """The stored spelling of ``states`` (for SQL ``IN`` filters), in a stable order."""
    return sorted(s.value for s in states)


@dataclass(frozen=True)
class WorkerTuning:
    """How many attempts each kind of work gets, and the pace once a revocation is failing."""

    provision_max_attempts: int = 6
    revoke_max_attempts: int = 6
    revoke_failed_interval_s: float = 300.0


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as the worker saw it."""

    message: str
    permanent: bool = False  # retrying cannot help: provisioning fails at once
    refused: bool = False  # retrying cannot help a revocation: revoke_failed at once
    retry_after_s: float | None = None  # what the server asked for, already bounded


@dataclass
class Grant:
    """One request for temporary admin rights, from request to verified revocation."""

    id: str
    customer: str
    identity_provider: str
    ticket_id: str
    requester: str
    reason: str
    duration_minutes: int
    created_at: datetime
    expires_at: datetime
    state: GrantState = S.REQUESTED
    username: str | None = None
    activated_at: datetime | None = None
    revoked_at: datetime | None = None
    # Durable execution bookkeeping, owned by the worker.
    account: dict[str, Any] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None  # the worker's last failed attempt in this state
    revoke_requested_by: str | None = None
    # The tenant (M365: tenant GUID; AD: domain SID) the grant was provisioned in: every later
    # revoke and verify must run there, or not at all.
    tenant_id: str | None = None
    # The drift reconciler found this active grant's admin access gone on the target (since).
    access_missing_at: datetime | None = None
    # What the customer's policy asked when the request was made (a later policy change never
    # weakens it): how many approvals, until when, and those given ({"by", "at", "comment"}).
    approvals_needed: int = 0
    approval_expires_at: datetime | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)

    def transition(
        self, target: GrantState, *, actor: str, at: datetime, **data: Any
    ) -> AuditEvent:
        if not can_transition(self.state, target):
            raise InvalidTransitionError(self.state.value, target.value)
        previous = self.state
        self.state = target
        # Each state starts its own retry budget; a drift flag is about the active grant only.
        self.attempts = 0
        self.last_error = None
        self.access_missing_at = None
        self.next_attempt_at = at if target in WORKER else None
        if target is S.ACTIVE:
            self.activated_at = at
        elif target is S.REVOKED:
            self.revoked_at = at
        return AuditEvent(
            kind=f"grant.{target.value}",
            actor=actor,
            at=at,
            grant_id=self.id,
            customer=self.customer,
            data={"from": previous.value, "to": target.value, **data},
        )

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED

    # -- people: revoke now, extend ------------------------------------------------------

    def request_revoke(self, *, actor: str, at: datetime) -> AuditEvent | None:
        """Start revoking now; None when already on its way out (asking again is harmless)."""
        if self.state in REVOCATION_PENDING or self.state is S.REVOKED:
            return None
        if self.state is S.PENDING_APPROVAL:
            raise ConflictError(
                f"a pending_approval grant cannot be revoked: nothing was granted yet; cancel "
                f"the request with POST /api/v1/grants/{self.id}/cancel"
            )
        if self.state not in REVOCABLE:
            raise ConflictError(f"a {self.state.value} grant cannot be revoked")
        self.revoke_requested_by = actor
        return self.transition(S.REVOKING, actor=actor, at=at, trigger="revoke")

    def check_extension(self, minutes: int, maximum_minutes: int) -> datetime:
        """The new end after ``minutes`` more, or why not. The cap is on the whole life, from
        activation, never from "now": repeated extends must not add up to standing access."""
        if self.state is not S.ACTIVE:
            raise ConflictError(
                f"only an active grant can be extended (this one is {self.state.value})"
            )
        new_expiry = self.expires_at + timedelta(minutes=minutes)
        started = self.activated_at or self.created_at
        if new_expiry - started > timedelta(minutes=maximum_minutes):
            raise ValidationFailedError.single(
                "minutes",
                f"would make the grant last more than {maximum_minutes} minutes from its "
                "activation",
            )
        return new_expiry

    def extend(self, minutes: int, *, until: datetime, actor: str, at: datetime) -> AuditEvent:
        """Record an extension to ``until`` (checked by :meth:`check_extension` and applied on
        the target); the event names its sequence number, as the ticket note does."""
        event = AuditEvent(
            kind="grant.extended",
            actor=actor,
            at=at,
            grant_id=self.id,
            customer=self.customer,
            data={"minutes": minutes, "from": self.expires_at.isoformat(), "to": until.isoformat()},
        )
        self.expires_at = until
        self.duration_minutes += minutes
        self.steps.append(f"extended-{self.extensions + 1}")
        return event

    @property
    def extensions(self) -> int:
        return sum(1 for step in self.steps if step.startswith("extended"))

    # -- the worker: activate, expire, fail ------------------------------------------------

    def activate(
        self, username: str, account: dict[str, Any], *, actor: str, at: datetime
    ) -> AuditEvent:
        """Access exists now: the grant's clock starts here, not at the request."""
        self.username = username
        self.account.update(account)
        self.expires_at = at + timedelta(minutes=self.duration_minutes)
        return self.transition(
            S.ACTIVE, actor=actor, at=at, username=username, expires_at=self.expires_at.isoformat()
        )

    def expiry_due(self, now: datetime) -> bool:
        return self.state is S.ACTIVE and self.expires_at <= now

    def expire(self, now: datetime) -> AuditEvent | None:
        """Start the revocation of an active grant whose time is up; None when it is not."""
        if not self.expiry_due(now):
            return None
        return self.transition(S.REVOKING, actor=EXPIRY, at=now, trigger="expiry")

    def needs_worker(self, now: datetime) -> bool:
        """Work is due: provisioning, revoking, an expiry whose start failed, or a request
        whose approval window is over."""
        return self.state in WORKER or self.expiry_due(now) or self.approval_window_over(now)

    @property
    def retry_limit_s(self) -> float:
        """The longest a Retry-After (or any backoff) may postpone this grant's work: five
        minutes for revocation work (an expiry included), an hour for provisioning."""
        return MAX_RETRY_AFTER_S if self.state is S.PROVISIONING else MAX_REVOKE_RETRY_AFTER_S

    def record_failure(
        self, failure: Failure, *, at: datetime, tuning: WorkerTuning, retry: RetryPolicy
    ) -> list[AuditEvent]:
        """Count the attempt and schedule the next, or move on when out of budget:

        * provisioning: after ``provision_max_attempts`` (or a permanent error) it fails, and
          whatever was half made goes to the verified revoke path at once;
        * revoking: after ``revoke_max_attempts`` (or a refusal, e.g. another tenant) it turns
          ``revoke_failed``, retried every ``revoke_failed_interval_s`` forever;
        * otherwise exponential backoff with jitter, never earlier than the server's
          Retry-After, never later than :attr:`retry_limit_s`.

        Returns the audit events to store with the grant, ``grant.attempt_failed`` last."""
        message = failure.message
        self.attempts += 1
        self.last_error = message
        events: list[AuditEvent] = []
        interval = timedelta(seconds=tuning.revoke_failed_interval_s)
        if self.state is S.PROVISIONING and (
            failure.permanent or self.attempts >= tuning.provision_max_attempts
        ):
            events.append(self.transition(S.FAILED, actor=WORKER_ACTOR, at=at, error=message))
            events.append(self.transition(S.REVOKING, actor=WORKER_ACTOR, at=at, trigger="cleanup"))
            self.last_error = message
        elif self.state is S.REVOKING and (
            failure.refused or self.attempts >= tuning.revoke_max_attempts
        ):
            attempts = self.attempts
            events.append(
                self.transition(
                    S.REVOKE_FAILED, actor=WORKER_ACTOR, at=at, error=message, attempts=attempts
                )
            )
            self.last_error = message
            self.next_attempt_at = at + interval
        elif self.state is S.REVOKE_FAILED:
            self.next_attempt_at = at + max(
                interval, timedelta(seconds=failure.retry_after_s or 0.0)
            )
        else:
            delay = retry.delay(max(self.attempts, 1), failure.retry_after_s)
            self.next_attempt_at = at + timedelta(seconds=min(delay, self.retry_limit_s))
        events.append(
            AuditEvent(
                kind="grant.attempt_failed",
                actor=WORKER_ACTOR,
                at=at,
                grant_id=self.id,
                customer=self.customer,
                data={"state": self.state.value, "attempts": self.attempts, "error": message},
            )
        )
        return events

    # -- approvals -------------------------------------------------------------------------

    def await_approval(self, needed: int, timeout_minutes: int, *, at: datetime) -> AuditEvent:
        """The request waits for ``needed`` approvals until ``timeout_minutes`` from now."""
        self.approvals_needed = needed
        self.approval_expires_at = at + timedelta(minutes=timeout_minutes)
        return self.transition(
            S.PENDING_APPROVAL, actor=POLICY_ACTOR, at=at, approvals_needed=needed,
            approval_expires_at=self.approval_expires_at.isoformat(),
        )  # fmt: skip

    @property
    def approvers(self) -> list[str]:
        return [str(a["by"]) for a in self.approvals]

    def approval_window_over(self, now: datetime) -> bool:
        return (
            self.state is S.PENDING_APPROVAL
            and self.approval_expires_at is not None
            and self.approval_expires_at <= now
        )

    def _check_decider(self, actor: str, now: datetime, what: str) -> None:
        if self.state is not S.PENDING_APPROVAL:
            raise ConflictError(
                f"only a pending_approval grant can be {what} (this one is {self.state.value})"
            )
        if actor == self.requester:
            raise ForbiddenError(f"a request cannot be {what} by its own requester")
        if self.approval_window_over(now):
            assert self.approval_expires_at is not None
            raise ConflictError(
                f"the request expired at {iso(self.approval_expires_at)} without a decision"
            )

    def check_approval(self, actor: str, now: datetime) -> None:
        """Why ``actor`` may not approve now, if so: only a pending request, in its window,
        never by its requester (403), never twice by the same person (409)."""
        self._check_decider(actor, now, "approved")
        if actor in self.approvers:
            raise ConflictError(f"{actor} has already approved this request")

    def approve(self, *, actor: str, comment: str | None, at: datetime) -> list[AuditEvent]:
        """Record ``actor``'s approval; the last one needed moves the grant on to provisioning
        (through ``approved``, whose event names every approver)."""
        self.check_approval(actor, at)
        self.approvals.append({"by": actor, "at": at.isoformat(), "comment": comment})
        given, needed = len(self.approvals), max(self.approvals_needed, 1)
        if given < needed:
            return [
                AuditEvent(
                    kind="grant.approval_given", actor=actor, at=at, grant_id=self.id,
                    customer=self.customer,
                    data={"comment": comment, "approvals": given, "approvals_needed": needed},
                )
            ]  # fmt: skip
        approved = self.transition(
            S.APPROVED, actor=actor, at=at, comment=comment, approvers=self.approvers
        )
        return [approved, self.transition(S.PROVISIONING, actor=POLICY_ACTOR, at=at)]

    def reject(self, *, actor: str, comment: str, at: datetime) -> AuditEvent:
        self._check_decider(actor, at, "rejected")
        if not comment.strip():
            raise ValidationFailedError.single("comment", "is required to reject a request")
        return self.transition(S.REJECTED, actor=actor, at=at, comment=comment.strip())

    def cancel(self, *, actor: str, at: datetime) -> AuditEvent:
        if self.state is not S.PENDING_APPROVAL:
            raise ConflictError(
                f"only a pending_approval grant can be cancelled (this one is "
                f"{self.state.value}); revoke a grant that was approved"
            )
        return self.transition(S.CANCELLED, actor=actor, at=at)

    def expire_approval(self, now: datetime) -> AuditEvent | None:
        """No decision within the window: the request ends; None while it is still open."""
        if not self.approval_window_over(now):
            return None
        return self.transition(S.EXPIRED, actor=EXPIRY, at=now, trigger="approval_timeout")

    # -- the drift reconciler's flag ---------------------------------------------------------

    @property
    def access_missing(self) -> bool:
        return self.access_missing_at is not None

    def flag_access_missing(self, at: datetime) -> None:
        """The target shows no admin access for this active grant: say so, change nothing
        else (it still ends, and is revoked, on time)."""
        if self.state is not S.ACTIVE:
            raise InvalidTransitionError(self.state.value, "access_missing")
        self.access_missing_at = at

    def clear_access_missing(self) -> None:
        self.access_missing_at = None

    @property
    def shown_error(self) -> str | None:
        """What ``last_error`` shows people (API, console): the worker's last failure, else
        the drift flag, spelled as it always was (it starts with ``drift:``)."""
        if self.last_error is not None or self.access_missing_at is None:
            return self.last_error
        return (
            f"drift: admin access not found on the target at {iso(self.access_missing_at)}; "
            "the grant stays active and still ends on time"
        )
