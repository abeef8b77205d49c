"""The error tree shared by every layer.

Domain errors (``JitError`` and children) are raised by core and services and turned into
problem+json in exactly one place (the API's error handler). Adapter errors form a small
taxonomy that services and the worker branch on: retry a ``TransientError``, stop and alert on
``MisconfiguredError``, give up on ``RejectedError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class JitError(Exception):
    """Base of every error jitadmin raises on purpose."""


@dataclass(frozen=True)
class FieldProblem:
    field: str
    rule: str


class ValidationFailedError(JitError):
    """Bad input: names each field and the rule it broke. Nothing was written."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.rule}" for p in problems))

    @classmethod
    def single(cls, field_name: str, rule: str) -> ValidationFailedError:
        return cls([FieldProblem(field_name, rule)])


class NotFoundError(JitError):
    """A thing the caller named does not exist (or is not visible to the caller)."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class ConflictError(JitError):
    """The request clashes with current state (e.g. an active grant already exists)."""

    def __init__(self, message: str, *, existing_id: str | None = None) -> None:
        self.existing_id = existing_id
        super().__init__(message)


class ForbiddenError(JitError):
    """The caller's role may not do this."""


class InvalidTransitionError(JitError):
    def __init__(self, current: str, target: str) -> None:
        self.current = current
        self.target = target
        super().__init__(f"a grant in state {current!r} cannot move to {target!r}")


# --- adapter taxonomy -------------------------------------------------------------------


@dataclass
class AdapterError(Exception):
    """Raised by adapters; the message never contains a secret."""

    message: str
    vendor_code: str | None = None
    retry_after_s: float | None = field(default=None)

    def __str__(self) -> str:
        suffix = f" ({self.vendor_code})" if self.vendor_code else ""
        return f"{self.message}{suffix}"


class TransientError(AdapterError):
    """Try again later: timeouts, 429, 5xx, replication delay, unreachable host."""


class AdapterNotFoundError(AdapterError):
    """The remote object does not exist."""


class AlreadyExistsError(AdapterError):
    """The remote object exists already (and is not ours to adopt)."""


class RejectedError(AdapterError):
    """The remote system refused the input (weak password, invalid name, closed ticket...)."""


class MisconfiguredError(AdapterError):
    """Credentials, consent or permissions are wrong: retrying will not help until fixed."""


class TenantMismatchError(MisconfiguredError):
    """The connection now reaches another tenant (or domain) than the grant was made in."""
