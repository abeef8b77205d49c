"""OpenID Connect sign-in pages: /auth/oidc/start sends the browser to the identity provider,
/auth/oidc/callback takes it back (docs/security.md "Signing in with OpenID Connect").

The flow's state, nonce, PKCE verifier and destination travel in one cookie sealed with the
secret key (nothing is stored before sign-in) and good for 10 minutes; it is SameSite=Lax, as
the provider's redirect back is a cross-site navigation that would not carry a Strict cookie.
Failures before a validated ID token count as failed sign-ins (throttled, audited); refusals
after one are audited by the service. Every refusal is a page saying what happened.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from jitadmin.adapters.oidc import OidcError
from jitadmin.entrypoints.web.auth import (
    SESSION_COOKIE,
    BareCtx,
    client_of,
    policy_of,
    secure_cookies,
    settings_of,
    start_session,
)
from jitadmin.entrypoints.web.render import page
from jitadmin.entrypoints.web.routing import HtmlRoute
from jitadmin.entrypoints.web.signin import safe_next
from jitadmin.services import oidc_signin, signin_limits
from jitadmin.services.context import ServiceContext
from jitadmin.wiring import OidcSetup

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
FLOW_COOKIE = "jitadmin_oidc"
FLOW_PATH = "/auth/oidc"
FLOW_SECONDS = 600
FLOW_CONTEXT = "oidc-flow"
CALLBACK = "/auth/oidc/callback"
TRY_AGAIN = "Please go back to the sign-in page and try again."


def oidc_of(request: Request) -> OidcSetup | None:
    setup: OidcSetup | None = request.app.state.app.oidc
    return setup


def redirect_uri(request: Request) -> str:
    """{JITADMIN_PUBLIC_URL}/auth/oidc/callback; without it, the address the browser used."""
    base = settings_of(request).public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return base + CALLBACK


def _clear_flow(request: Request, response: Response) -> None:
    response.delete_cookie(
        FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="lax", secure=secure_cookies(request)
    )


def _refused(request: Request, status: int, message: str) -> Response:
    response = page("oidc_refused.html", status, title="Sign-in refused", message=message)
    _clear_flow(request, response)
    return response


@router.get("/auth/oidc/start")
def start(
    request: Request, ctx: BareCtx, next_url: Annotated[str, Query(alias="next")] = "/"
) -> Response:
    setup = oidc_of(request)
    if setup is None:
        return page("error.html", 404, title="Not found", code=404,
                    detail="Single sign-on is not set up here.")  # fmt: skip
    # RFC 7636: a verifier of 43-128 characters; 64 random bytes make 86.
    state, nonce, verifier = (secrets.token_urlsafe(n) for n in (32, 32, 64))
    back = redirect_uri(request)
    flow = {"state": state, "nonce": nonce, "verifier": verifier, "next": safe_next(next_url),
            "redirect_uri": back, "started": ctx.clock.now().timestamp()}  # fmt: skip
    try:
        url = setup.client.authorization_url(
            redirect_uri=back, state=state, nonce=nonce, code_verifier=verifier
        )
    except OidcError:
        return _refused(request, 502, f"The identity provider could not be reached. {TRY_AGAIN}")
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE, ctx.box.seal(json.dumps(flow), FLOW_CONTEXT), max_age=FLOW_SECONDS,
        path=FLOW_PATH, httponly=True, samesite="lax", secure=secure_cookies(request),
    )  # fmt: skip
    return response


def _flow(ctx: ServiceContext, request: Request) -> dict[str, str | float] | None:
    sealed = request.cookies.get(FLOW_COOKIE, "")
    try:
        flow = json.loads(ctx.box.open(sealed, FLOW_CONTEXT)) if sealed else None
    except Exception:  # noqa: BLE001 - a cookie that does not open is no flow, whatever broke
        return None
    if not isinstance(flow, dict) or not isinstance(started := flow.get("started"), int | float):
        return None
    age = ctx.clock.now().timestamp() - started
    return flow if 0 <= age < FLOW_SECONDS else None


class _FailedError(Exception):
    """A sign-in failed before any validated ID token: ``why`` for the audit log."""

    def __init__(self, why: str, status: int, message: str) -> None:
        super().__init__(why)
        self.why, self.status, self.message = why, status, message


def _answer(ctx: ServiceContext, request: Request, setup: OidcSetup) -> dict[str, object]:
    """The validated ID token's claims of the provider's answer in this request."""
    query = request.query_params
    flow = _flow(ctx, request)
    if flow is None:
        raise _FailedError("no or expired flow cookie", 400,
                      "This sign-in was started too long ago or in another browser.")  # fmt: skip
    if not hmac.compare_digest(str(flow["state"]).encode(), query.get("state", "").encode()):
        raise _FailedError(
            "state mismatch", 400, "The identity provider's answer is not for this sign-in."
        )
    # RFC 9207: an answer naming another issuer is a mix-up, whatever else it carries.
    if "iss" in query and query["iss"] != setup.policy.issuer:
        raise _FailedError("iss parameter mismatch", 400,
                      "The answer came from another identity provider.")  # fmt: skip
    if "error" in query:
        error = query["error"][:64]
        raise _FailedError(f"provider error {error}", 403,
                      f"The identity provider did not sign you in ({error}).")  # fmt: skip
    try:
        return setup.client.redeem(
            code=query.get("code", "")[:2048], redirect_uri=str(flow["redirect_uri"]),
            code_verifier=str(flow["verifier"]), nonce=str(flow["nonce"]), now=ctx.clock.now(),
        ) | {"_next": flow["next"]}  # fmt: skip
    except OidcError as error:
        if error.unavailable:
            raise _FailedError(error.reason, 502,
                          "The identity provider could not be reached.") from None  # fmt: skip
        raise _FailedError(
            error.reason, 400, "The identity provider's answer could not be verified."
        ) from None


def _throttled(request: Request, wait: int) -> Response:
    response = _refused(request, 429, "Too many failed sign-ins. Please wait a few minutes.")
    response.headers["Retry-After"] = str(wait)
    return response


@router.get(CALLBACK)
def callback(request: Request, ctx: BareCtx) -> Response:
    setup = oidc_of(request)
    if setup is None:
        return page("error.html", 404, title="Not found", code=404,
                    detail="Single sign-on is not set up here.")  # fmt: skip
    client = client_of(request)
    if (wait := signin_limits.locked_for(ctx, "", client)) is not None:
        return _throttled(request, wait)
    try:
        claims = _answer(ctx, request, setup)
    except _FailedError as failed:
        # Counted and audited like a wrong password, so a flood of forged answers is throttled
        # (an unreachable provider is nobody's failure: not counted).
        if failed.status != 502:
            wait = signin_limits.record_failure(ctx, "", client, f"oidc: {failed.why}")
            if wait is not None:
                return _throttled(request, wait)
        return _refused(request, failed.status, f"{failed.message} {TRY_AGAIN}")
    target = str(claims.pop("_next"))
    try:
        signed = oidc_signin.sign_in(
            ctx, claims, setup.policy, policy_of(request), client=client,
            replaces=request.cookies.get(SESSION_COOKIE, ""),
        )  # fmt: skip
    except oidc_signin.OidcRefusedError as refused:
        return _refused(request, refused.status, refused.message)
    # 200 and a same-site refresh, not a redirect: a redirect would still belong to the
    # provider's cross-site navigation, and the browser would not send the Strict cookie.
    response = page("oidc_continue.html", title="Signed in", next_url=target)
    start_session(request, response, signed)
    _clear_flow(request, response)
    return response
