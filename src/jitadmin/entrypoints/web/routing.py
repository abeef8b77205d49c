"""Route classes: console pages answer errors with HTML pages, console JSON with problem+json.

The API's problem+json handlers are app-wide; a person in a browser should see a page with
the navigation instead, so page routes translate domain errors here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from jitadmin.core.errors import ForbiddenError, JitError, UnauthorizedError
from jitadmin.entrypoints.api.problems import problem_response
from jitadmin.entrypoints.web.auth import (
    ENROLMENT_PATH,
    EnrolmentRequiredError,
    SignInRequiredError,
    optional_visitor,
)
from jitadmin.entrypoints.web.render import harden, page

log = logging.getLogger("jitadmin.web")
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_TITLES = {
    400: "Not possible",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible now",
    422: "Not valid",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "A connected system did not answer",
}


def signin_redirect(request: Request, expired: bool) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = f"next={quote(target, safe='')}" + ("&expired=1" if expired else "")
    return RedirectResponse(f"/signin?{query}", status_code=303)


def error_page(request: Request, status: int, detail: str) -> Response:
    return page(
        "error.html",
        status,
        visitor=optional_visitor(request),
        title=_TITLES.get(status, "Error"),
        code=status,
        detail=detail,
    )


class HtmlRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequiredError as error:
                response = signin_redirect(request, error.expired)
            except EnrolmentRequiredError:
                response = RedirectResponse(ENROLMENT_PATH, status_code=303)
            except JitError as error:
                response = error_page(request, error.status, str(error))
            except (HTTPException, RequestValidationError):
                raise
            except Exception:
                log.exception("unhandled error on %s", request.url.path)
                response = error_page(request, 500, "An unexpected error occurred.")
            return harden(response)

        return run


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequiredError:
                # Domain errors fall through to the app's problem+json handlers.
                response = problem_response(UnauthorizedError("sign in again"))
            except EnrolmentRequiredError:
                response = problem_response(
                    ForbiddenError(f"set up a second factor first ({ENROLMENT_PATH})")
                )
            response.headers["Cache-Control"] = "no-store"
            return response

        return run
