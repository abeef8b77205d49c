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
