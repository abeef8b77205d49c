"""Errors → RFC 9457 problem+json, in exactly one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jitadmin.core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidTransitionError,
    NotFoundError,
    ValidationFailedError,
)
from jitadmin.services.grants import UpstreamUnavailableError
from jitadmin.services.limits import RateLimitedError

log = logging.getLogger("jitadmin.api")
PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str, *, retry_after: int | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers or None)


def _field_of(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ValidationFailedError)
    async def _validation(_: Request, error: ValidationFailedError) -> JSONResponse:
        errors = [{"field": p.field, "rule": p.rule} for p in error.problems]
        return problem(422, "Invalid request", str(error), errors=errors)

    @app.exception_handler(RequestValidationError)
    async def _schema(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = []
        for item in error.errors():
            kind = item.get("type", "")
            field = _field_of(tuple(item.get("loc", ())))
            rule = (
                "body is not valid JSON" if kind == "json_invalid" else item.get("msg", "invalid")
            )
            errors.append({"field": field, "rule": rule})
        detail = "; ".join(f"{e['field']}: {e['rule']}" for e in errors)
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, error: NotFoundError) -> JSONResponse:
        return problem(404, "Not found", str(error))

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, error: ConflictError) -> JSONResponse:
        extra: dict[str, Any] = {"existing_grant": error.existing_id} if error.existing_id else {}
        return problem(409, "Conflict", str(error), **extra)

    @app.exception_handler(InvalidTransitionError)
    async def _transition(_: Request, error: InvalidTransitionError) -> JSONResponse:
        return problem(409, "Conflict", str(error))

    @app.exception_handler(ForbiddenError)
    async def _forbidden(_: Request, error: ForbiddenError) -> JSONResponse:
        return problem(403, "Forbidden", str(error))

    @app.exception_handler(RateLimitedError)
    async def _limited(_: Request, error: RateLimitedError) -> JSONResponse:
        return problem(429, "Too many requests", str(error), retry_after=error.retry_after_s)

    @app.exception_handler(UpstreamUnavailableError)
    async def _upstream(_: Request, error: UpstreamUnavailableError) -> JSONResponse:
        return problem(503, "Upstream unavailable", str(error))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem(error.status_code, "Error", str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "Internal error", "an unexpected error occurred; see the server log")
