"""The grant and its lifecycle, as a transition table.

```
requested ──▶ provisioning ──▶ active ──(expires_at | revoke)──▶ revoking ──▶ revoked
    │               │                                               └──▶ revoke_failed ──▶ revoked
    └──▶ denied     └──▶ failed ──▶ revoking (clean up whatever was half made)
```
Every move goes through :meth:`Grant.transition`, which refuses anything not in the table and
returns the audit event that must be stored in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from jitadmin.core.errors import InvalidTransitionError
from jitadmin.core.events import AuditEvent


class GrantState(StrEnum):
    REQUESTED = "requested"
    PENDING_APPROVAL = "pending_approval"  # reserved for approvals
    APPROVED = "approved"  # reserved for approvals
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
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.DENIED}),
    S.APPROVED: frozenset({S.PROVISIONING}),
    S.DENIED: frozenset(),
    # A revoke asked for while provisioning goes straight to cleaning up.
    S.PROVISIONING: frozenset({S.ACTIVE, S.FAILED, S.REVOKING}),
    S.ACTIVE: frozenset({S.REVOKING}),
    S.FAILED: frozenset({S.REVOKING}),
    S.REVOKING: frozenset({S.REVOKED, S.REVOKE_FAILED}),
    S.REVOKE_FAILED: frozenset({S.REVOKED}),
    S.REVOKED: frozenset(),
}

# States in which the target may hold (or be about to hold) admin rights.
LIVE_STATES = frozenset({S.REQUESTED, S.PENDING_APPROVAL, S.APPROVED, S.PROVISIONING, S.ACTIVE})
# States the worker must drive forward.
WORKER_STATES = frozenset({S.PROVISIONING, S.REVOKING, S.REVOKE_FAILED})
# States that still need a revocation before the grant is finished.
UNFINISHED_STATES = frozenset(set(GrantState) - {S.REVOKED, S.DENIED})


def can_transition(current: GrantState, target: GrantState) -> bool:
    return target in TRANSITIONS[current]


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
    last_error: str | None = None
    revoke_requested_by: str | None = None
    # The tenant (M365: tenant GUID; AD: domain SID) the grant was provisioned in: every later
    # revoke and verify must run there, or not at all.
    tenant_id: str | None = None

    def transition(
        self, target: GrantState, *, actor: str, at: datetime, **data: Any
    ) -> AuditEvent:
        if not can_transition(self.state, target):
            raise InvalidTransitionError(self.state.value, target.value)
        previous = self.state
        self.state = target
        # Each state starts its own retry budget.
        self.attempts = 0
        self.last_error = None
        self.next_attempt_at = at if target in WORKER_STATES else None
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
        return self.state in (S.REVOKED, S.DENIED)
