"""The error tree shared by every layer.

Domain errors (``JitError`` and children) are raised by core and services. Each class names
its problem once, as class attributes: ``problem_type`` (a stable slug; the problem+json
``type`` is ``PROBLEM_TYPE_PREFIX + problem_type``), the HTTP ``status`` and the ``title``.
The API turns them into problem+json in exactly one place (``entrypoints.api.problems``); the
web console renders its pages with the same ``status``. Adapter errors form a small taxonomy
that services and the worker branch on: retry a ``TransientError``, stop and alert on
``MisconfiguredError``, give up on ``RejectedError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

# A tag URI (RFC 4151): stable, and not meant to be dereferenced (RFC 9457 section 3.1.1).
PROBLEM_TYPE_PREFIX = "tag:jitadmin,2026:problem/"


class JitError(Exception):
    """Base of every error jitadmin raises on purpose."""

    problem_type: ClassVar[str] = "bad-request"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    # Seconds until a retry may succeed (sent as ``Retry-After``); None when unknown.
    retry_after_s: int | None = None

    def extensions(self) -> dict[str, Any]:
        """Problem members beyond type/title/status/detail (RFC 9457 extension members)."""
        return {}


@dataclass(frozen=True)
class FieldProblem:
    field: str
    rule: str


class ValidationFailedError(JitError):
    """Bad input: names each field and the rule it broke. Nothing was written."""

    problem_type = "invalid-request"
    status = 422
    title = "Invalid request"

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.rule}" for p in problems))

    @classmethod
    def single(cls, field_name: str, rule: str) -> ValidationFailedError:
        return cls([FieldProblem(field_name, rule)])

    def extensions(self) -> dict[str, Any]:
        return {"errors": [{"field": p.field, "rule": p.rule} for p in self.problems]}


class UnauthorizedError(JitError):
    """No credential, or one that is not (or no longer) valid."""

    problem_type = "unauthorized"
    status = 401
    title = "Unauthorized"


class SignInFailedError(UnauthorizedError):
    """Unknown user or wrong password; deliberately does not say which."""

    def __init__(self) -> None:
        super().__init__("unknown username or wrong password")


class AccountDisabledError(SignInFailedError):
    """The password was right, but an admin has disabled the account (said only then, so the
    message tells nobody without the password whether the account exists)."""

    problem_type = "account-disabled"

    def __init__(self) -> None:
        JitError.__init__(self, "this account is disabled; ask an admin to enable it")


class SignInThrottledError(SignInFailedError):
    """Too many failed sign-ins for this username or from this address: locked for a while."""

    problem_type = "sign-in-throttled"
    status = 429
    title = "Too many requests"

    retry_after_s: int

    def __init__(self, retry_after_s: int) -> None:
        JitError.__init__(self, "too many failed sign-ins; try again later")
        self.retry_after_s = retry_after_s


class ForbiddenError(JitError):
    """The caller's role may not do this."""

    problem_type = "forbidden"
    status = 403
    title = "Forbidden"


class CsrfRejectedError(ForbiddenError):
    """A console form or script request without the session's CSRF token."""

    def __init__(self) -> None:
        super().__init__("the form's security token is missing or stale; reload the page")


class NotFoundError(JitError):
    """A thing the caller named does not exist (or is not visible to the caller)."""

    problem_type = "not-found"
    status = 404
    title = "Not found"

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class FeatureOffError(JitError):
    """An optional endpoint this installation has switched off: it answers as if absent."""

    problem_type = "feature-off"
    status = 404
    title = "Not Found"


class ConflictError(JitError):
    """The request clashes with current state (e.g. an active grant already exists)."""

    problem_type = "conflict"
    status = 409
    title = "Conflict"

    def __init__(self, message: str, *, existing_id: str | None = None) -> None:
        self.existing_id = existing_id
        super().__init__(message)

    def extensions(self) -> dict[str, Any]:
        return {"existing_grant": self.existing_id} if self.existing_id else {}


class AuditTamperedError(JitError):
    """The audit chain's head record failed authentication: nothing more is appended to it."""


class InvalidTransitionError(JitError):
    problem_type = "invalid-transition"
    status = 409
    title = "Conflict"

    def __init__(self, current: str, target: str) -> None:
        self.current = current
        self.target = target
        super().__init__(f"a grant in state {current!r} cannot move to {target!r}")


class RequestTooLargeError(JitError):
    """The request body is larger than the configured bound; it was not read further."""

    problem_type = "request-too-large"
    status = 413
    title = "Request body too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")


class RateLimitedError(JitError):
    """Too many attempts in the window; try again after ``retry_after_s`` seconds."""

    problem_type = "rate-limited"
    status = 429
    title = "Too many requests"

    retry_after_s: int

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class InternalError(JitError):
    """Something failed that nobody raised on purpose; the details are in the server log."""

    problem_type = "internal-error"
    status = 500
    title = "Internal error"


class UpstreamUnavailableError(JitError):
    """A system we must ask first (the PSA, Graph...) did not answer; nothing was written."""

    problem_type = "upstream-unavailable"
    status = 503
    title = "Upstream unavailable"


class NotReadyError(JitError):
    """This process cannot serve yet (e.g. the database is unreachable)."""

    problem_type = "not-ready"
    status = 503
    title = "Service Unavailable"


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


class ConnectionSettingsAlteredError(MisconfiguredError):
    """A connection's stored settings are not the ones its secret was sealed with.

    The plaintext settings (URLs, tenant, user...) are the sealed secret's associated data, so a
    settings change made outside jitadmin (directly in the database) leaves the secret unusable.
    """

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: connection settings were altered outside jitadmin (they no longer match "
            "the sealed secret); save the connection again with its secret"
        )


class TenantMismatchError(MisconfiguredError):
    """The connection now reaches another tenant (or domain) than the grant was made in."""


@dataclass
class AgentPendingError(TransientError):
    """The step was handed to the customer's on-prem agent and has no result yet.

    Not a failure: the worker sets the next attempt without counting one and lets go of the
    grant (no thread waits); the agent's result brings the attempt forward. ``offline``: no
    agent of the customer is online, which is an alert."""

    offline: bool = False
