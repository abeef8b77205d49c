"""Sign-in and sign-out pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from jitadmin.core.errors import AccountDisabledError, SignInFailedError, SignInThrottledError
from jitadmin.entrypoints.web.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    BareCtx,
    Ctx,
    Form,
    FormVisitor,
    clear_cookie,
    client_of,
    new_signin_token,
    optional_visitor,
    policy_of,
    set_cookie,
    settings_of,
    start_session,
    text,
)
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.services import sessions

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
SIGNIN_FORM_SECONDS = 3600


def safe_next(raw: str) -> str:
    """Only a path on this site: an open redirect would make our sign-in a phishing aid."""
    # Browsers drop tabs and newlines from URLs, so "/\t/evil" would become "//evil".
    ok = raw.startswith("/") and not raw.startswith("//") and "\\" not in raw
    ok = ok and raw.isprintable() and " " not in raw
    return raw if ok else "/"


def _signin_page(
    request: Request, *, next_url: str, status: int = 200, error: str = "", notice: str = "",
    username: str = "",
) -> Response:  # fmt: skip
    token = new_signin_token()
    oidc = request.app.state.app.oidc
    response = page(
        "signin.html", status, title="Sign in", token=token, next_url=safe_next(next_url),
        error=error, notice=notice, username=username,
        local=settings_of(request).local_signin,
        oidc_name=None if oidc is None else oidc.display_name,
    )  # fmt: skip
    set_cookie(request, response, SIGNIN_COOKIE, token, SIGNIN_FORM_SECONDS)
    return response


@router.get("/signin")
def signin_page(
    request: Request,
    next_url: Annotated[str, Query(alias="next")] = "/",
    expired: str = "",
    signed_out: str = "",
) -> Response:
    if optional_visitor(request) is not None:
        return RedirectResponse(safe_next(next_url), status_code=303)
    notice = ""
    if expired:
        notice = "Your session has ended. Please sign in again."
    elif signed_out:
        notice = "You have signed out."
    return _signin_page(request, next_url=next_url, notice=notice)


@router.post("/signin")
def signin(request: Request, ctx: BareCtx, form: Form) -> Response:
    next_url = text(form, "next")
    username = text(form, "username")
    if not settings_of(request).local_signin:
        # Only single sign-on here (JITADMIN_LOCAL_SIGNIN=false): no password is even checked.
        return _signin_page(
            request, next_url=next_url, status=403,
            error="Sign-in with a username and password is switched off here.",
        )  # fmt: skip
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not sessions.csrf_matches(expected, text(form, CSRF_FIELD)):
        return _signin_page(
            request, next_url=next_url, status=403, username=username,
            error="The sign-in form had expired. Please try again.",
        )  # fmt: skip
    try:
        signed = sessions.sign_in(
            ctx, username, text(form, "password"), policy_of(request), client=client_of(request),
            replaces=request.cookies.get(SESSION_COOKIE, ""), code=text(form, "code"),
        )  # fmt: skip
    except SignInThrottledError as throttled:
        response = _signin_page(
            request, next_url=next_url, status=throttled.status, username=username,
            error="Too many failed sign-ins. Please wait a few minutes and try again.",
        )  # fmt: skip
        response.headers["Retry-After"] = str(throttled.retry_after_s)
        return response
    except AccountDisabledError as disabled:
        return _signin_page(
            request, next_url=next_url, status=disabled.status, username=username,
            error="This account is disabled. Ask a jitadmin administrator to enable it.",
        )  # fmt: skip
    except SignInFailedError as failed:
        return _signin_page(
            request, next_url=next_url, status=failed.status, username=username,
            error="Unknown username or wrong password or authentication code.",
        )  # fmt: skip
    response = RedirectResponse(safe_next(next_url), status_code=303)
    start_session(request, response, signed)
    return response


@router.post("/signout")
def signout(request: Request, ctx: Ctx, visitor: FormVisitor) -> Response:
    sessions.sign_out(ctx, visitor.session_id, client=client_of(request))
    response = RedirectResponse("/signin?signed_out=1", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response
