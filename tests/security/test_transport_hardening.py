"""Issue 12 item 12: what the HTTP surface gives away — caching of secrets, /metrics, /docs,
proxy headers — attacked through a real uvicorn server on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from jitadmin.emulators.runner import RunningServer, serve_in_thread
from jitadmin.entrypoints.api.app import create_app
from jitadmin.ports import User
from jitadmin.services import admin
from jitadmin.wiring import App, build

from support.config import METRICS_TOKEN, fast_settings
from support.system import System

ROOT = User("root", "admin")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def test_every_answer_carrying_a_password_or_token_is_no_store(system: System) -> None:
    customer = system.world.customers[0]
    with system.client("admin") as api:
        made = api.post("/users", json={"username": "nostore@msp.example", "role": "technician"})
        minted = api.post("/tokens", json={})
        grant = api.post(
            "/grants",
            json={
                "customer": customer.slug, "identity_provider": "m365",
                "ticket_id": str(customer.open_ticket_ids[0]), "duration_minutes": 30,
                "reason": "no-store test",
            },
        )  # fmt: skip
        revealed = api.post(f"/grants/{grant.json()['id']}/password", json={"reason": "check"})
        answers = {"user": made, "token": minted, "grant": grant, "reveal": revealed}
        for name, answer in answers.items():
            assert answer.status_code < 300, (name, answer.text)
            assert answer.headers["cache-control"] == "no-store", name
        assert "password" in made.json() and "token" in minted.json()
        assert grant.json()["password"] and revealed.json()["password"]
        # Every other API answer too, errors included: none is ever cached.
        assert api.get("/grants").headers["cache-control"] == "no-store"
        assert api.get("/grants/nope").headers["cache-control"] == "no-store"


def scrape(system: System, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{system.url}/metrics", headers=headers, timeout=30)


def test_metrics_need_the_metrics_token(system: System) -> None:
    assert scrape(system, METRICS_TOKEN).status_code == 200
    assert "jitadmin_grants" in scrape(system, METRICS_TOKEN).text
    user_token = system.users["admin"]["token"]
    for token in (None, user_token, METRICS_TOKEN[:-1], METRICS_TOKEN + "x"):
        refused = scrape(system, token)
        assert refused.status_code == 401, token
        assert "jitadmin_" not in refused.text and refused.headers["www-authenticate"] == "Bearer"


def test_metrics_are_off_without_a_token(tmp_path: Path) -> None:
    app = build(fast_settings(tmp_path, metrics_token=None))
    try:
        with TestClient(create_app(app)) as client:
            for headers in ({}, {"Authorization": "Bearer anything-at-all-here"}):
                off = client.get("/metrics", headers=headers)
                assert off.status_code == 404 and "JITADMIN_METRICS_TOKEN" in off.text
                assert "jitadmin_" not in off.text.replace("JITADMIN_METRICS_TOKEN", "")
    finally:
        app.close()


def test_a_short_metrics_token_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="metrics_token"):
        fast_settings(tmp_path, metrics_token="short")


def _no_script(page: str) -> None:
    assert "<script" not in page.lower() and "http" not in page.replace("/openapi.json", "")


def test_docs_are_off_by_default_and_never_load_third_party_script(tmp_path: Path) -> None:
    default = build(fast_settings(tmp_path / "a"))
    enabled = build(fast_settings(tmp_path / "b", api_docs=True))
    try:
        with TestClient(create_app(default)) as client:
            for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
                assert client.get(path).status_code == 404, path
            assert "/api/v1/grants" in client.get("/openapi.json").json()["paths"]
        with TestClient(create_app(enabled)) as client:
            page = client.get("/docs")
            assert page.status_code == 200 and "/api/v1/grants/{grant_id}/revoke" in page.text
            _no_script(page.text)
            assert page.headers["content-security-policy"].startswith("default-src 'none'")
            assert client.get("/redoc").status_code == 404
    finally:
        default.close()
        enabled.close()


# --- proxy headers -----------------------------------------------------------------------

Serve = Callable[..., tuple[App, RunningServer]]


@pytest.fixture
def serve(tmp_path: Path, database_url: str) -> Iterator[Serve]:
    running: list[tuple[App, RunningServer]] = []

    def _serve(**overrides: Any) -> tuple[App, RunningServer]:
        settings = fast_settings(tmp_path, database_url=database_url, **overrides)
        app = build(settings)
        running.append((app, serve_in_thread(create_app(app))))
        return running[-1]

    yield _serve
    for app, server in running:
        server.stop()
        app.close()


def sign_in(url: str, username: str, forged: str) -> int:
    """One failed sign-in through the form, claiming to come from ``forged``."""
    with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as client:
        page = client.get("/signin").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        form = {"csrf_token": token.group(1), "username": username, "password": "wrong"}
        headers = {"X-Forwarded-For": forged, "X-Forwarded-Proto": "https"}
        return client.post("/signin", data=form, headers=headers).status_code


def failures_from(app: App, client: str) -> int:
    with app.ctx.uow() as uow:
        return uow.signin_failures.counts("", client, EPOCH).client.count


def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(serve: Serve) -> None:
    app, server = serve(signin_failures_per_client=3, signin_failures_per_user=100)
    admin.add_user(app.ctx, ROOT, username="victim", role="technician")
    # Each attempt claims another address: the throttle still counts the real peer.
    codes = [sign_in(server.url, f"user{i}", f"203.0.113.{i}") for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert failures_from(app, "127.0.0.1") == 3
    assert all(failures_from(app, f"203.0.113.{i}") == 0 for i in range(4))
    # And the forged X-Forwarded-Proto did not make the server believe it was https.
    answer = httpx.get(f"{server.url}/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in answer.headers


def test_forwarded_for_counts_from_a_listed_proxy(serve: Serve) -> None:
    app, server = serve(
        signin_failures_per_client=3, signin_failures_per_user=100,
        forwarded_allow_ips="127.0.0.1",
    )  # fmt: skip
    codes = [sign_in(server.url, f"user{i}", f"203.0.113.{i}") for i in range(4)]
    assert codes == [401] * 4
    assert failures_from(app, "127.0.0.1") == 0
    assert [failures_from(app, f"203.0.113.{i}") for i in range(4)] == [1, 1, 1, 1]
    answer = httpx.get(f"{server.url}/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "max-age=" in answer.headers["strict-transport-security"]
