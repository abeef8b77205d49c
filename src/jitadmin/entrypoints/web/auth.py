"""Who is asking: session cookies, CSRF checks and the FastAPI dependencies built on them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from jitadmin.core.errors import CsrfRejectedError
from jitadmin.ports import User
from jitadmin.services import sessions
from jitadmin.services.context import ServiceContext
from jitadmin.settings import Settings

SESSION_COOKIE = "jitadmin_session"
# Double-submit token for the sign-in form, which has no session to hold a CSRF token yet.
SIGNIN_COOKIE = "jitadmin_signin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Visitor:
    user: User
    csrf: str
    session_id: str

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"

    @property
    def sees_all(self) -> bool:
        return self.user.role in ("admin", "auditor", "approver")

    @property
    def may_decide(self) -> bool:
        """Approve or reject others' requests (the services check the scope)."""
        return self.user.role in ("admin", "approver")


# What a session that still has to set up its second factor may reach.
ENROLMENT_PATH = "/account/second-factor"
ENROLMENT_PATHS = frozenset({ENROLMENT_PATH, f"{ENROLMENT_PATH}/start",
                             f"{ENROLMENT_PATH}/confirm", "/signout"})  # fmt: skip


class EnrolmentRequiredError(Exception):
    """Signed in with a password alone, by a role that needs a second factor."""


class SignInRequiredError(Exception):
    def __init__(self, expired: bool) -> None:
        self.expired = expired
        super().__init__("sign in first")


def ctx_of(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


async def _bare_ctx(request: Request) -> ServiceContext:
    # async: a plain ``def`` dependency would cost a thread-pool round trip.
    return ctx_of(request)


async def _ctx(request: Request) -> ServiceContext:
    """The context of a signed-in request: its audit events name the session that acted.

    Derived from the cookie alone; the visitor dependency of the same route checks the session
    itself, so a request with a bad cookie never reaches a service with this context."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    credential = sessions.credential_of(session_id) if session_id else None
    return ctx_of(request).acting(credential)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.app.settings
    return settings


def policy_of(request: Request) -> sessions.SessionPolicy:
    settings = settings_of(request)
    return sessions.SessionPolicy(
        idle=timedelta(minutes=settings.web_session_idle_minutes),
        absolute=timedelta(hours=settings.web_session_absolute_hours),
    )


def client_of(request: Request) -> str:
    return request.client.host if request.client else ""


def secure_cookies(request: Request) -> bool:
    mode = settings_of(request).web_cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="strict", secure=secure_cookies(request)
    )


def start_session(request: Request, response: Response, signed: sessions.SignedIn) -> None:
    lifetime = int(policy_of(request).absolute.total_seconds())
    set_cookie(request, response, SESSION_COOKIE, signed.session_id, lifetime)
    clear_cookie(request, response, SIGNIN_COOKIE)


def new_signin_token() -> str:
    return secrets.token_urlsafe(32)


def visitor(request: Request, *, touch: bool = True) -> Visitor:
    session_id = request.cookies.get(SESSION_COOKIE, "")
    found = (
        sessions.resolve(ctx_of(request), session_id, policy_of(request), touch=touch)
        if session_id
        else None
    )
    if found is None:
        raise SignInRequiredError(expired=bool(session_id))
    if found.must_enrol and request.url.path not in ENROLMENT_PATHS:
        raise EnrolmentRequiredError
    return Visitor(found.user, found.csrf_token, session_id)


def optional_visitor(request: Request) -> Visitor | None:
    try:
        return visitor(request, touch=False)
    except (SignInRequiredError, EnrolmentRequiredError):
        return None


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def posted_form(request: Request) -> FormData:
    return await request.form()


def page_visitor(request: Request) -> Visitor:
    return visitor(request)


def poll_visitor(request: Request) -> Visitor:
    return visitor(request, touch=False)


def form_visitor(request: Request, form: Annotated[FormData, Depends(posted_form)]) -> Visitor:
    """A state-changing form post: signed in, and carrying this session's CSRF token."""
    found = visitor(request)
    if not sessions.csrf_matches(found.csrf, text(form, CSRF_FIELD)):
        raise CsrfRejectedError
    return found


def json_visitor(request: Request) -> Visitor:
    """A state-changing JSON call from our own script: the CSRF token comes in a header."""
    found = visitor(request)
    if not sessions.csrf_matches(found.csrf, request.headers.get(CSRF_HEADER)):
        raise CsrfRejectedError
    return found


Ctx = Annotated[ServiceContext, Depends(_ctx)]
# Sign-in: no session acts yet (a stale cookie the browser still sends names nothing).
BareCtx = Annotated[ServiceContext, Depends(_bare_ctx)]
Form = Annotated[FormData, Depends(posted_form)]
PageVisitor = Annotated[Visitor, Depends(page_visitor)]
PollVisitor = Annotated[Visitor, Depends(poll_visitor)]
FormVisitor = Annotated[Visitor, Depends(form_visitor)]
JsonVisitor = Annotated[Visitor, Depends(json_visitor)]
