"""HTTP plumbing of the Graph emulator: error envelopes (Graph and Entra), URLs, JSON bodies.

Entra's token errors:
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow;
Graph's envelope and codes: https://learn.microsoft.com/graph/errors.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import Scope

# What Graph sends; clients must accept any ``application/json*``.
GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)


class GraphJSONResponse(JSONResponse):
    media_type = GRAPH_JSON


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_z(moment: datetime) -> str:
    """Graph's timestamp style: ``2026-05-01T10:00:02Z`` (whole seconds, Z suffix)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphError(Exception):
    """Raised anywhere below a route; rendered as the Graph error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def not_found(ident: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{ident}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def denied() -> GraphError:
    return GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def bad_request(
    message: str, code: str = "Request_BadRequest", details: list[dict[str, str]] | None = None
) -> GraphError:
    return GraphError(400, code, message, details)


def unsupported_query(message: str = "Unsupported Query.") -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", message)


def graph_error_body(
    code: str,
    message: str,
    request_id: str,
    client_request_id: str,
    details: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    error["innerError"] = {
        "date": utc_now().strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": client_request_id,
    }
    return {"error": error}


# Codes used for injected faults and for statuses raised by the framework itself.
FAULT_CODES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Bad request."),
    401: ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    404: ("Request_ResourceNotFound", "Resource not found."),
    405: ("Request_BadRequest", "Specified HTTP method is not allowed for the request target."),
    # The directory's own 409 (https://learn.microsoft.com/graph/errors): retry shortly.
    409: (
        "Directory_ConcurrencyViolation",
        "Error due to concurrent requests being made to the tenant. Please wait briefly and retry.",
    ),
    429: ("TooManyRequests", "Too many requests."),
    500: ("generalException", "General exception while processing."),
    502: ("UnknownError", ""),
    503: ("serviceNotAvailable", "Service is temporarily unavailable. Please try again later."),
    504: ("UnknownError", ""),
}


def fault_code(status: int) -> tuple[str, str]:
    if status in FAULT_CODES:
        return FAULT_CODES[status]
    return ("generalException", "Error.") if status >= 500 else ("BadRequest", "Error.")


class EntraError(Exception):
    """An OAuth error from the token or discovery endpoint (AADSTS code + OAuth error name)."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"{status} {error} AADSTS{aadsts}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description


def entra_error_body(err: EntraError, trace_id: str, correlation_id: str) -> dict[str, Any]:
    stamp = utc_now().strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{err.aadsts}: {err.description}\r\nTrace ID: {trace_id}\r\n"
        f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
    )
    return {
        "error": err.error,
        "error_description": description,
        "error_codes": [err.aadsts],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        # Informational link on Microsoft's host, as Entra sends it; never followed by clients.
        "error_uri": f"https://login.microsoftonline.com/error?code={err.aadsts}",
    }


def entra_fault(status: int) -> EntraError:
    """The Entra-shaped error for an injected fault on the token endpoint."""
    if status == 401:
        return EntraError(401, "invalid_client", 7000215, "Invalid client secret provided.")
    if status == 429 or status >= 500:
        error = "temporarily_unavailable" if status in (429, 503) else "server_error"
        return EntraError(status, error, 90033, "A transient error has occurred. Try again.")
    return EntraError(status, "invalid_request", 9002313, "Request is malformed or invalid.")


def relative_path(scope: Scope) -> str:
    """The path below the app's mount point (``/v1.0/users`` whether mounted or not)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def root_url(request: Request) -> str:
    """Absolute URL of the app root, mount prefix included (``http://host:port/graph``).

    ``request.base_url`` is not used: Starlette builds it from the *top-level* app's root.
    """
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or Graph's 400 for anything else."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set "
            "and payload is of valid JSON format.",
            code="BadRequest",
        )
    return body
