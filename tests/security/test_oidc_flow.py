"""OpenID Connect sign-in attacked at the HTTP level, against the real OpenID Provider (npm's
oidc-provider): a tampered state, a replayed code, a token for another audience, an expired
token, a wrong nonce, a forged signature, an unknown key, a mixed-up issuer."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from jitadmin.adapters.clock import ManualClock
from jitadmin.adapters.oidc import LEEWAY_SECONDS, OidcClient, OidcClientConfig, OidcError
from jitadmin.entrypoints.logging_redaction import redact
from jitadmin.entrypoints.web.auth import SESSION_COOKIE
from jitadmin.entrypoints.web.oidc_pages import FLOW_COOKIE

from support.oidc import (
    ADMIN,
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_CLIENT_ID,
    OTHER_CLIENT_SECRET,
    OTHER_REDIRECT,
    PASSWORD,
    OpenIdProvider,
    follow_to_provider_login,
    query_of,
    start_oidc_system,
)
from support.system import System, stop_system

pytest_plugins = ("support.oidc_fixtures",)


@pytest.fixture
def browser_http(sso: System) -> Iterator[httpx.Client]:
    """A cookie-keeping client that plays the browser (redirects followed by hand)."""
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        yield http


def rp(sso: System) -> OidcClient:
    assert sso.app.oidc is not None
    return sso.app.oidc.client


def failures(sso: System) -> list[str]:
    with sso.app.ctx.uow() as uow:
        return [str(e.data["why"]) for e in uow.audit.entries(limit=10_000)
                if e.kind == "auth.sign_in_failed"]  # fmt: skip


def session_cookie(http: httpx.Client) -> str | None:
    return next((c.value for c in http.cookies.jar if c.name == SESSION_COOKIE), None)


def back_from_provider(sso: System, http: httpx.Client, login: str = ADMIN) -> str:
    return follow_to_provider_login(http, f"{sso.url}/auth/oidc/start", login, PASSWORD)


def issued(
    provider: OpenIdProvider, *, client_id: str, secret: str, redirect_uri: str, nonce: str
) -> dict[str, Any]:
    """A token response the provider gives ``client_id`` after a real sign-in as ADMIN."""
    verifier = secrets.token_urlsafe(64)
    relying = OidcClient(OidcClientConfig(provider.issuer, client_id, secret))
    url = relying.authorization_url(
        redirect_uri=redirect_uri, state="s", nonce=nonce, code_verifier=verifier
    )
    token_endpoint = relying.metadata()["token_endpoint"]
    relying.close()
    with httpx.Client(timeout=30) as http:
        code = query_of(follow_to_provider_login(http, url, ADMIN, PASSWORD))["code"]
        response = http.post(
            token_endpoint, auth=(client_id, secret),
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": redirect_uri, "code_verifier": verifier},
        )  # fmt: skip
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def claims_of(id_token: str) -> dict[str, Any]:
    """What a token says, unchecked (to build the attacks from)."""
    payload = id_token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


def test_the_whole_flow_at_the_http_level(sso: System, browser_http: httpx.Client) -> None:
    back = back_from_provider(sso, browser_http)
    answer = query_of(back)
    assert set(answer) >= {"code", "state", "iss"}
    start = browser_http.cookies.get(FLOW_COOKIE, path="/auth/oidc")
    assert start is not None and answer["state"] not in start  # sealed, not readable
    done = browser_http.get(back)
    assert done.status_code == 200 and session_cookie(browser_http)


def test_the_access_log_keeps_no_authorization_code(
    sso: System, browser_http: httpx.Client
) -> None:
    back = back_from_provider(sso, browser_http)
    code = query_of(back)["code"]
    line = f'127.0.0.1:50000 - "GET {back.removeprefix(sso.url)} HTTP/1.1" 200'
    assert code in line and code not in redact(line)
    assert query_of(back)["state"] in redact(line)  # not a secret: it is bound to the cookie


def test_tampered_state_is_refused(sso: System, browser_http: httpx.Client) -> None:
    back = back_from_provider(sso, browser_http)
    state = query_of(back)["state"]
    forged = back.replace(f"state={state}", f"state={state[:-2]}xy")
    refused = browser_http.get(forged)
    assert refused.status_code == 400
    assert "The identity provider&#39;s answer is not for this sign-in." in refused.text
    assert session_cookie(browser_http) is None
    assert failures(sso) == ["oidc: state mismatch"]


def test_answer_without_the_browser_that_started_it_is_refused(
    sso: System, browser_http: httpx.Client
) -> None:
    back = back_from_provider(sso, browser_http)
    with httpx.Client(timeout=30) as elsewhere:  # no flow cookie: another browser (login CSRF)
        refused = elsewhere.get(back)
    assert refused.status_code == 400
    assert "started too long ago or in another browser" in refused.text
    assert failures(sso) == ["oidc: no or expired flow cookie"]


def test_forged_callbacks_lock_no_one_else_out(sso: System, browser_http: httpx.Client) -> None:
    """Callbacks without a flow cookie count per address and globally, never in a bucket every
    OIDC sign-in shares: more of them than the per-user limit leave a real sign-in working."""
    per_user = sso.app.ctx.security.signin_failures_per_user
    with httpx.Client(timeout=30) as attacker:
        for _ in range(per_user + 1):
            forged = attacker.get(f"{sso.url}/auth/oidc/callback?code=x&state=y")
            assert forged.status_code == 400
    assert len(failures(sso)) == per_user + 1
    done = browser_http.get(back_from_provider(sso, browser_http))
    assert done.status_code == 200 and session_cookie(browser_http)


def test_replayed_code_is_refused(sso: System, browser_http: httpx.Client) -> None:
    back = back_from_provider(sso, browser_http)
    flow = browser_http.cookies.get(FLOW_COOKIE, path="/auth/oidc")
    assert browser_http.get(back).status_code == 200
    # The same answer again, with the flow cookie an eavesdropper would have kept: the code
    # is spent at the provider (invalid_grant), so no second session comes of it.
    with httpx.Client(timeout=30, cookies={FLOW_COOKIE: flow or ""}) as replay:
        refused = replay.get(back)
        assert session_cookie(replay) is None
    assert refused.status_code == 400
    assert "could not be verified" in refused.text
    assert failures(sso) == ["oidc: token: invalid_grant"]


def test_mixed_up_issuer_parameter_is_refused(sso: System, browser_http: httpx.Client) -> None:
    back = back_from_provider(sso, browser_http)
    refused = browser_http.get(back.split("&iss=")[0] + "&iss=https%3A%2F%2Fevil.example")
    assert refused.status_code == 400
    assert failures(sso) == ["oidc: iss parameter mismatch"]


def test_token_for_another_audience_is_refused(sso: System, provider: OpenIdProvider) -> None:
    nonce = secrets.token_urlsafe(16)
    other = issued(provider, client_id=OTHER_CLIENT_ID, secret=OTHER_CLIENT_SECRET,
                   redirect_uri=OTHER_REDIRECT, nonce=nonce)  # fmt: skip
    assert claims_of(other["id_token"])["aud"] == OTHER_CLIENT_ID
    with pytest.raises(OidcError) as refused:
        rp(sso).validate(other["id_token"], nonce=nonce, now=datetime.now(UTC))
    assert "aud" in refused.value.reason


def own_token(sso: System, provider: OpenIdProvider, nonce: str) -> dict[str, Any]:
    return issued(provider, client_id=CLIENT_ID, secret=CLIENT_SECRET,
                  redirect_uri=f"{sso.url}/auth/oidc/callback", nonce=nonce)  # fmt: skip


def test_expired_token_and_wrong_nonce_are_refused(sso: System, provider: OpenIdProvider) -> None:
    nonce = secrets.token_urlsafe(16)
    token = own_token(sso, provider, nonce)
    claims = claims_of(token["id_token"])
    now = datetime.now(UTC)
    assert rp(sso).validate(token["id_token"], nonce=nonce, now=now)["sub"] == ADMIN
    expired_at = datetime.fromtimestamp(claims["exp"] + LEEWAY_SECONDS + 1, UTC)
    with pytest.raises(OidcError) as expired:
        rp(sso).validate(token["id_token"], nonce=nonce, now=expired_at)
    assert "expired" in expired.value.reason
    issued_before = datetime.fromtimestamp(claims["iat"] - LEEWAY_SECONDS - 60, UTC)
    with pytest.raises(OidcError) as early:  # iat in the future: a clock or a forgery
        rp(sso).validate(token["id_token"], nonce=nonce, now=issued_before)
    assert "issued in the future" in early.value.reason
    with pytest.raises(OidcError) as replayed:
        rp(sso).validate(token["id_token"], nonce="another-sign-in", now=now)
    assert "nonce" in replayed.value.reason


def test_forged_signature_and_unknown_key_are_refused(
    sso: System, provider: OpenIdProvider
) -> None:
    nonce = secrets.token_urlsafe(16)
    claims = claims_of(own_token(sso, provider, nonce)["id_token"])
    claims["groups"] = ["jit-admins"]
    ours = RSAKey.generate_key(2048)
    now = datetime.now(UTC)
    # Signed with our key under the provider's kid: the signature does not verify.
    forged = jwt.encode({"alg": "RS256", "kid": provider.kid}, claims, ours)
    with pytest.raises(OidcError) as bad_signature:
        rp(sso).validate(forged, nonce=nonce, now=now)
    assert "signature" in bad_signature.value.reason
    # Under a kid the issuer never published: the JWKS is fetched again, and still lacks it.
    unknown = jwt.encode({"alg": "RS256", "kid": "not-a-key-of-the-issuer"}, claims, ours)
    with pytest.raises(OidcError):
        rp(sso).validate(unknown, nonce=nonce, now=now)
    # "none" and a MAC keyed with the (known) client secret are never accepted.
    hmac_token = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(CLIENT_SECRET.encode()))
    with pytest.raises(OidcError):
        rp(sso).validate(hmac_token, nonce=nonce, now=now)
    with pytest.raises(OidcError):
        rp(sso).validate("e30.e30.", nonce=nonce, now=now)


def test_unreachable_provider_is_a_page_and_no_failure(
    sso: System, provider: OpenIdProvider, browser_http: httpx.Client
) -> None:
    provider.stop()
    refused = browser_http.get(f"{sso.url}/auth/oidc/start")
    assert refused.status_code == 502
    assert "could not be reached" in refused.text
    assert failures(sso) == []
    provider.start()
    assert browser_http.get(back_from_provider(sso, browser_http)).status_code == 200


def test_expired_flow_is_refused(tmp_path: Path, provider: OpenIdProvider) -> None:
    clock = ManualClock(datetime.now(UTC))
    system = start_oidc_system(tmp_path, provider, clock=clock)
    try:
        with httpx.Client(timeout=30) as http:
            back = back_from_provider(system, http)
            clock.advance(timedelta(minutes=11))  # the flow cookie is good for 10 minutes
            refused = http.get(back)
            assert session_cookie(http) is None
        assert refused.status_code == 400
        assert failures(system) == ["oidc: no or expired flow cookie"]
    finally:
        stop_system(system)
