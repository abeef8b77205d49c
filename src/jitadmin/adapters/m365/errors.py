"""Graph error responses mapped into the shared adapter error taxonomy.

The envelope and codes: https://learn.microsoft.com/graph/errors.

Classification keys on HTTP status, ``error.code`` and ``details[].code``; the only message
text test is the password-complexity case, which Graph reports as a plain Request_BadRequest.
Messages built here never carry a secret: values the request sent as passwords are scrubbed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    AlreadyExistsError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)
from jitadmin.core.retry import parse_retry_after

_MAX_MESSAGE = 300


class GraphNotFoundError(AdapterNotFoundError):
    """404: the object does not exist (or is not visible yet)."""


class GraphConflictError(AlreadyExistsError):
    """400 with ``details[].code == ObjectConflict`` (e.g. UPN taken), or a 409 other than a
    concurrency violation."""


# 409 codes that mean "the tenant was busy with concurrent writes: retry after a short delay"
# (https://learn.microsoft.com/graph/errors), not "already exists".
RETRYABLE_CONFLICTS = frozenset({"Directory_ConcurrencyViolation"})


class GraphBadRequestError(RejectedError):
    """Any other 400: Graph refused the input."""


class WeakPasswordError(GraphBadRequestError):
    """400: the password does not meet Entra's complexity rules."""


class GraphForbiddenError(MisconfiguredError):
    """403 ``Authorization_RequestDenied``: the app lacks a permission or directory role."""


@dataclass(frozen=True)
class GraphErrorBody:
    """The parts of a Graph error response that code may branch on."""

    status: int
    code: str | None
    message: str
    detail_codes: tuple[str, ...]
    request_id: str | None
    retry_after_s: float | None


def is_retryable_conflict(err: GraphErrorBody) -> bool:
    return err.status == 409 and err.code in RETRYABLE_CONFLICTS


def parse_error(response: httpx.Response) -> GraphErrorBody:
    code: str | None = None
    message = ""
    details: list[str] = []
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        raw_code, raw_message = error.get("code"), error.get("message")
        code = raw_code if isinstance(raw_code, str) else None
        message = raw_message if isinstance(raw_message, str) else ""
        for detail in error.get("details") or []:
            if isinstance(detail, dict) and isinstance(detail.get("code"), str):
                details.append(detail["code"])
    return GraphErrorBody(
        status=response.status_code,
        code=code,
        message=message,
        detail_codes=tuple(details),
        request_id=response.headers.get("request-id"),
        retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
    )


def _scrub(text: str, secrets: Collection[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def sensitive_values(body: Any) -> list[str]:
    """Every string under a key that names a password or secret, at any depth."""
    found: list[str] = []
    if isinstance(body, Mapping):
        for key, value in body.items():
            lowered = str(key).lower()
            if isinstance(value, str) and ("password" in lowered or "secret" in lowered):
                found.append(value)
            else:
                found.extend(sensitive_values(value))
    elif isinstance(body, list | tuple):
        for item in body:
            found.extend(sensitive_values(item))
    return found


_ERROR_BY_STATUS: dict[int, type[AdapterError]] = {
    401: MisconfiguredError,  # only raised after a freshly acquired token was refused too
    403: GraphForbiddenError,
    404: GraphNotFoundError,
    409: GraphConflictError,
}


def typed_error(label: str, err: GraphErrorBody, secrets: Collection[str] = ()) -> AdapterError:
    """Map a Graph error to the adapter taxonomy; the message never carries a secret."""
    text = f"{label}: HTTP {err.status}"
    if err.message:
        text += f" - {_scrub(err.message, secrets)[:_MAX_MESSAGE]}"
    if err.request_id:
        text += f" [request-id {err.request_id}]"
    if err.status == 400 and "ObjectConflict" in err.detail_codes:
        return GraphConflictError(text, vendor_code="ObjectConflict")
    lowered = err.message.lower()
    if err.status == 400 and "password" in lowered and "complexity" in lowered:
        # The one message test: Graph has no code of its own for it, only Request_BadRequest.
        return WeakPasswordError(
            f"{label}: the password does not meet Entra's complexity rules", vendor_code=err.code
        )
    if err.status == 429 or err.status >= 500 or is_retryable_conflict(err):
        return TransientError(text, vendor_code=err.code, retry_after_s=err.retry_after_s)
    return _ERROR_BY_STATUS.get(err.status, GraphBadRequestError)(text, vendor_code=err.code)
