"""Request policy: what a grant request must satisfy before anything is written."""

from __future__ import annotations

from dataclasses import dataclass

from jitadmin.core.errors import FieldProblem, ValidationFailedError

DEFAULT_MAX_DURATION_MINUTES = 480
MIN_REASON_LENGTH = 10
MAX_REASON_LENGTH = 2000


@dataclass(frozen=True)
class GrantRequest:
    customer: str
    identity_provider: str
    ticket_id: str
    duration_minutes: int
    reason: str


@dataclass(frozen=True)
class CustomerPolicy:
    configured_identity_providers: frozenset[str]
    # Every identity provider jitadmin was built with (the connector registry's).
    known_identity_providers: tuple[str, ...]
    max_duration_minutes: int = DEFAULT_MAX_DURATION_MINUTES


def check_duration(minutes: object, maximum: int, field_name: str = "duration_minutes") -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ValidationFailedError.single(field_name, "must be a whole number of minutes")
    if minutes < 1 or minutes > maximum:
        raise ValidationFailedError.single(field_name, f"must be between 1 and {maximum} minutes")
    return minutes


def check_reason(reason: str) -> str:
    cleaned = reason.strip()
    if not cleaned:
        raise ValidationFailedError.single("reason", "is required")
    if len(cleaned) < MIN_REASON_LENGTH:
        raise ValidationFailedError.single(
            "reason", f"must be at least {MIN_REASON_LENGTH} characters"
        )
    if len(cleaned) > MAX_REASON_LENGTH:
        raise ValidationFailedError.single(
            "reason", f"must be at most {MAX_REASON_LENGTH} characters"
        )
    return cleaned


def validate_request(request: GrantRequest, policy: CustomerPolicy) -> None:
    """Check everything that needs no outside system; raise naming every broken field."""
    problems: list[FieldProblem] = []
    known = policy.known_identity_providers
    if request.identity_provider not in known:
        problems.append(FieldProblem("identity_provider", f"must be one of {', '.join(known)}"))
    elif request.identity_provider not in policy.configured_identity_providers:
        problems.append(
            FieldProblem(
                "identity_provider",
                f"{request.identity_provider} is not configured for customer {request.customer}",
            )
        )
    if not str(request.ticket_id).strip():
        problems.append(FieldProblem("ticket_id", "is required"))
    for check in (
        lambda: check_duration(request.duration_minutes, policy.max_duration_minutes),
        lambda: check_reason(request.reason),
    ):
        try:
            check()
        except ValidationFailedError as error:
            problems.extend(error.problems)
    if problems:
        raise ValidationFailedError(problems)


# -- the customer's approval policy (GET/PUT /customers/{slug}/policy) ---------------------

DEFAULT_APPROVALS_NEEDED = 1
DEFAULT_APPROVAL_TIMEOUT_MINUTES = 60
MAX_POLICY_MINUTES = 10080  # a week: longer is standing access, not just in time
MAX_APPROVALS_NEEDED = 5


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which identity providers need approval for a customer, how many and how fast."""

    max_duration_minutes: int = DEFAULT_MAX_DURATION_MINUTES
    approval_required: tuple[str, ...] = ()
    approvals_needed: int = DEFAULT_APPROVALS_NEEDED
    approval_timeout_minutes: int = DEFAULT_APPROVAL_TIMEOUT_MINUTES

    def needs_approval(self, identity_provider: str) -> bool:
        return identity_provider in self.approval_required


def _whole_number(name: str, value: object, low: int, high: int) -> FieldProblem | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return FieldProblem(name, "must be a whole number")
    if not low <= value <= high:
        return FieldProblem(name, f"must be between {low} and {high}")
    return None


def check_policy(
    *,
    max_duration_minutes: object,
    approval_required: object,
    approvals_needed: object,
    approval_timeout_minutes: object,
    known_identity_providers: tuple[str, ...],
) -> ApprovalPolicy:
    """The policy, or a 422 naming every broken field."""
    problems = [
        p
        for p in (
            _whole_number("max_duration_minutes", max_duration_minutes, 1, MAX_POLICY_MINUTES),
            _whole_number("approvals_needed", approvals_needed, 1, MAX_APPROVALS_NEEDED),
            _whole_number(
                "approval_timeout_minutes", approval_timeout_minutes, 1, MAX_POLICY_MINUTES
            ),
        )
        if p is not None
    ]
    kinds: list[str] = []
    if not isinstance(approval_required, list | tuple) or not all(
        isinstance(k, str) for k in approval_required
    ):
        problems.append(FieldProblem("approval_required", "must be a list of identity providers"))
    else:
        unknown = [k for k in approval_required if k not in known_identity_providers]
        if unknown:
            problems.append(
                FieldProblem(
                    "approval_required",
                    f"unknown identity provider(s) {', '.join(unknown)}; "
                    f"must be among {', '.join(known_identity_providers)}",
                )
            )
        kinds = sorted(set(approval_required))
    if problems:
        raise ValidationFailedError(problems)
    assert isinstance(max_duration_minutes, int)
    assert isinstance(approvals_needed, int)
    assert isinstance(approval_timeout_minutes, int)
    return ApprovalPolicy(
        max_duration_minutes, tuple(kinds), approvals_needed, approval_timeout_minutes
    )
