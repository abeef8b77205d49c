"""Errors → RFC 9457 problem+json, in exactly one place.

Every ``JitError`` carries its problem type, status and title (``core.errors``); this module
only renders them. Framework errors (an unknown route, a wrong method) keep ``about:blank``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jitadmin.core.errors import (
    PROBLEM_TYPE_PREFIX,
    FieldProblem,
    InternalError,
    JitError,
    ValidationFailedError,
)

log = logging.getLogger("jitadmin.api")
PROBLEM = "application/problem+json"


def _response(status: int, body: dict[str, Any], retry_after: int | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers or None)


def problem_response(error: JitError) -> JSONResponse:
    """The problem+json answer for ``error``: type, title and status from its class."""
    body = {
        "type": PROBLEM_TYPE_PREFIX + error.problem_type,
        "title": error.title,
        "status": error.status,
        "detail": str(error),
        **error.extensions(),
    }
    return _response(error.status, body, error.retry_after_s)


def _field_of(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def schema_problems(error: RequestValidationError) -> ValidationFailedError:
    """FastAPI's schema errors in our vocabulary: one field and rule each."""
    problems = []
    for item in error.errors():
        kind = item.get("type", "")
        rule = "body is not valid JSON" if kind == "json_invalid" else item.get("msg", "invalid")
        problems.append(FieldProblem(_field_of(tuple(item.get("loc", ()))), rule))
    return ValidationFailedError(problems)


def install(app: FastAPI) -> None:
    @app.exception_handler(JitError)
    async def _jit(_: Request, error: JitError) -> JSONResponse:
        return problem_response(error)

    @app.exception_handler(RequestValidationError)
    async def _schema(_: Request, error: RequestValidationError) -> JSONResponse:
        return problem_response(schema_problems(error))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        body = {"type": "about:blank", "title": "Error", "status": error.status_code,
                "detail": str(error.detail)}  # fmt: skip
        return _response(error.status_code, body)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem_response(InternalError("an unexpected error occurred; see the server log"))
