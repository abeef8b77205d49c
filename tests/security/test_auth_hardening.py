"""Authentication and transport hardening: throttling, lockout, sessions, tokens, reveals,
headers, body size, log redaction."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jitadmin.adapters.clock import ManualClock
from jitadmin.core.errors import SignInFailedError, SignInThrottledError
from jitadmin.entrypoints import logging_redaction
from jitadmin.entrypoints.api.app import create_app
from jitadmin.ports import AuditQuery, User
from jitadmin.services import admin, grants, sessions
from jitadmin.wiring import App, build

from support.config import fast_settings
from support.system import start_system, stop_system

ROOT = User("root", "admin")
POLICY = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(tmp_path: Path, clock: ManualClock) -> Iterator[App]:
    built = build(fast_settings(tmp_path), clock=clock)
    yield built
    built.close()


def _events(app: App, kind: str) -> int:
    with app.ctx.uow() as uow:
        return len(uow.audit.search(AuditQuery(kind=kind), 1000))


def test_sign_in_locks_a_username_after_failures_then_frees_it(
    app: App, clock: ManualClock
) -> None:
    password = admin.add_user(app.ctx, ROOT, username="alice", role="technician").password
    for _ in range(5):
        with pytest.raises(SignInFailedError):
            sessions.sign_in(app.ctx, "alice", "wrong", POLICY, client=f"10.0.0.{_}")
    # Locked: even the right password is refused, and the refusal is audited.
    with pytest.raises(SignInThrottledError) as locked:
        sessions.sign_in(app.ctx, "alice", password, POLICY, client="10.0.0.99")
    assert 0 < locked.value.retry_after_s <= 15 * 60 + 1
    assert _events(app, "auth.sign_in_throttled") == 1
    clock.advance(timedelta(minutes=16))
    signed = sessions.sign_in(app.ctx, "alice", password, POLICY, client="10.0.0.99")
    assert signed.user.username == "alice"


def test_sign_in_locks_a_client_address_spraying_usernames(app: App) -> None:
    password = admin.add_user(app.ctx, ROOT, username="bob", role="technician").password
    for i in range(20):
        with pytest.raises(SignInFailedError):
            sessions.sign_in(app.ctx, f"guess{i}", "wrong", POLICY, client="203.0.113.7")
    with pytest.raises(SignInThrottledError):
        sessions.sign_in(app.ctx, "bob", password, POLICY, client="203.0.113.7")
    # Another address is not affected.
    assert sessions.sign_in(app.ctx, "bob", password, POLICY, client="198.51.100.1")


def test_sign_in_issues_a_new_session_and_ends_the_one_presented(app: App) -> None:
    password = admin.add_user(app.ctx, ROOT, username="carol", role="admin").password
    first = sessions.sign_in(app.ctx, "carol", password, POLICY)
    second = sessions.sign_in(app.ctx, "carol", password, POLICY, replaces=first.session_id)
    assert second.session_id != first.session_id and second.csrf_token != first.csrf_token
    assert sessions.resolve(app.ctx, first.session_id, POLICY) is None
    assert sessions.resolve(app.ctx, second.session_id, POLICY) is not None


def test_api_tokens_expire_and_can_be_revoked(app: App, clock: ManualClock) -> None:
    boss = admin.add_user(app.ctx, ROOT, username="boss", role="admin").token
    with TestClient(create_app(app)) as client:
        auth = {"Authorization": f"Bearer {boss}"}
        issued = client.post("/api/v1/tokens", json={"username": "boss"}, headers=auth)
        assert issued.status_code == 201
        second = issued.json()["token"]
        assert second.startswith("jit_")
        listed = client.get("/api/v1/tokens", headers=auth).json()["items"]
        assert all(second not in str(t) for t in listed), "a listed token must not be the token"
        assert all(t["expires_at"] for t in listed)
        newest = max(t["id"] for t in listed)
        assert client.delete(f"/api/v1/tokens/{newest}", headers=auth).status_code == 200
        gone = client.get("/api/v1/customers", headers={"Authorization": f"Bearer {second}"})
        assert gone.status_code == 401
        assert gone.headers["content-type"] == "application/problem+json"
        assert client.get("/api/v1/customers", headers=auth).status_code == 200
        clock.advance(timedelta(days=91))
        assert client.get("/api/v1/customers", headers=auth).status_code == 401


def test_security_headers_on_api_responses(tmp_path: Path) -> None:
    plain = build(fast_settings(tmp_path / "a"))
    behind_tls = build(fast_settings(tmp_path / "b", web_cookie_secure="always"))
    try:
        with TestClient(create_app(plain)) as client:
            for path in ("/healthz", "/api/v1/customers", "/openapi.json", "/signin"):
                response = client.get(path)
                assert response.headers["x-content-type-options"] == "nosniff", path
                assert response.headers["x-frame-options"] == "DENY", path
                csp = response.headers["content-security-policy"]
                assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
                assert "strict-transport-security" not in response.headers, path
        with TestClient(create_app(plain), base_url="https://testserver") as client:
            assert "max-age=" in client.get("/healthz").headers["strict-transport-security"]
        with TestClient(create_app(behind_tls)) as client:
            assert "strict-transport-security" in client.get("/healthz").headers
    finally:
        plain.close()
        behind_tls.close()


def test_request_bodies_are_bounded(app: App) -> None:
    token = admin.add_user(app.ctx, ROOT, username="dave", role="admin").token
    auth = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    big = b'{"slug": "' + b"a" * 70_000 + b'"}'
    with TestClient(create_app(app)) as client:
        declared = client.post("/api/v1/customers", content=big, headers=auth)
        assert declared.status_code == 413
        assert declared.headers["content-type"] == "application/problem+json"
        assert declared.json()["status"] == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b" " * 4096

        streamed = client.post("/api/v1/customers", content=chunks(), headers=auth)
        assert streamed.status_code == 413
        small = client.post(
            "/api/v1/customers", json={"slug": "ok-co", "name": "Ok", "psa_company_id": 1},
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert small.status_code == 201, small.text


def test_password_reveal_needs_a_reason_and_is_rate_limited(tmp_path: Path) -> None:
    system = start_system(tmp_path, with_worker=False, reveal_limit_per_hour=2)
    try:
        customer = system.world.customers[0]
        made = grants.request_grant(
            system.app.ctx, User("tech@msp.example", "technician"), customer=customer.slug,
            identity_provider="m365", ticket_id=str(customer.open_ticket_ids[0]),
            duration_minutes=10, reason="Reveal limit test",
        )  # fmt: skip
        url = f"/grants/{made.grant.id}/password"
        with system.client("admin") as api:
            assert api.post(url).status_code == 422
            assert api.post(url, json={"reason": "  "}).status_code == 422
            for _ in range(2):
                shown = api.post(url, json={"reason": "customer called"})
                assert shown.status_code == 200 and shown.json()["password"] == made.password
            limited = api.post(url, json={"reason": "once more"})
            assert limited.status_code == 429
            assert limited.headers["content-type"] == "application/problem+json"
            assert int(limited.headers["retry-after"]) > 0
            assert made.password not in limited.text
            audit = api.get("/audit", params={"grant_id": made.grant.id}).json()["items"]
        kinds = [e["kind"] for e in audit]
        assert kinds.count("grant.password_revealed") == 2
        assert kinds.count("grant.password_reveal_refused") == 1
    finally:
        stop_system(system)


def test_log_redaction_masks_secrets_by_pattern() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logging_redaction.RedactingFilter())
    log = logging.getLogger("jitadmin.test.redaction")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        log.info("settings %s", {"client_secret": "s3cr3t value", "tenant_id": "t-1"})
        log.info("headers Authorization: Bearer jit_AAAAAAAAAAAAAAAAAAAAAAAA")
        log.info("body password=Hunter2!& token jit_BBBBBBBBBBBBBBBBBBBBBBBB")
        log.info("sealed v1.0badc0de.%s", "x" * 40)
        try:
            raise ValueError("bind_password='p@ss w0rd' rejected")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    for secret in ("s3cr3t", "jit_AAAA", "Hunter2", "jit_BBBB", "x" * 40, "p@ss"):
        assert secret not in text, secret
    assert "t-1" in text and "ValueError" in text and text.count("[redacted]") >= 6


def test_signin_page_answers_429_when_locked(app: App) -> None:
    password = admin.add_user(app.ctx, ROOT, username="erin", role="technician").password
    with TestClient(create_app(app)) as client:

        def attempt(secret: str) -> int:
            form = client.get("/signin").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token is not None
            data = {"csrf_token": token.group(1), "username": "erin", "password": secret}
            response = client.post("/signin", data=data, follow_redirects=False)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) > 0
                assert "Too many failed sign-ins" in response.text
            return int(response.status_code)

        assert [attempt("wrong") for _ in range(5)] == [401] * 5
        assert attempt(password) == 429
