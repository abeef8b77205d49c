"""TOTP for local accounts on a running system, SQLite and PostgreSQL, with admins required to
use it (JITADMIN_TOTP_REQUIRED_ROLES=admin): an admin without one is held on the enrolment page
until it confirms a code; then the sign-in form needs a right, unused code or recovery code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jitadmin.core import totp
from jitadmin.services import admin

from support.insiders import ROOT
from support.system import System, start_system, stop_system


@pytest.fixture
def strict_system(tmp_path: Path, database_url: str) -> Iterator[System]:
    running = start_system(
        tmp_path, database_url=database_url, with_worker=False, totp_required_roles="admin"
    )
    yield running
    stop_system(running)


def _signin(client: httpx.Client, username: str, password: str, code: str = "") -> httpx.Response:
    form = client.get("/signin").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    data = {"csrf_token": token.group(1), "username": username, "password": password,
            "code": code}  # fmt: skip
    return client.post("/signin", data=data)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_an_admin_enrols_then_signs_in_with_codes_good_once(strict_system: System) -> None:
    system = strict_system
    new = admin.add_user(system.app.ctx, ROOT, username="breakglass", role="admin")
    with httpx.Client(base_url=system.url, timeout=30, follow_redirects=False) as browser:
        assert _signin(browser, "breakglass", new.password).status_code == 303
        held = browser.get("/admin/users")
        assert held.status_code == 303 and held.headers["location"] == "/account/second-factor"
        page = browser.get("/account/second-factor").text
        started = browser.post("/account/second-factor/start", data={"csrf_token": _csrf(page)})
        secret = re.search(r'id="totp-secret" class="secret">([A-Z2-7]+)<', started.text)
        assert secret is not None and "otpauth://totp/" in started.text
        wrong = browser.post(
            "/account/second-factor/confirm", data={"csrf_token": _csrf(page), "code": "000000"}
        )
        assert wrong.status_code == 422 and "does not match" in wrong.text
        code = totp.code_at(secret.group(1), system.app.ctx.clock.now().timestamp())
        confirmed = browser.post(
            "/account/second-factor/confirm", data={"csrf_token": _csrf(page), "code": code}
        )
        assert confirmed.status_code == 200, confirmed.text
        recovery = re.findall(
            r'<li><code class="secret">([a-z2-7]{5}-[a-z2-7]{5})</code>', confirmed.text
        )
        assert len(recovery) == 10
        assert browser.get("/admin/users").status_code == 200  # no longer held
    with httpx.Client(base_url=system.url, timeout=30, follow_redirects=False) as browser:
        assert _signin(browser, "breakglass", new.password).status_code == 401  # no code
        assert _signin(browser, "breakglass", new.password, code).status_code == 401  # used
        assert _signin(browser, "breakglass", new.password, recovery[0]).status_code == 303
    with httpx.Client(base_url=system.url, timeout=30, follow_redirects=False) as browser:
        refused = _signin(browser, "breakglass", new.password, recovery[0])
        assert refused.status_code == 401 and "authentication code" in refused.text
    # A lost phone: an admin resets the second factor; the next sign-in enrols again.
    with system.client("admin") as api:
        assert api.get("/users/breakglass").json()["second_factor"] is True
        reset = api.delete("/users/breakglass/second-factor")
        assert reset.status_code == 200 and reset.json()["reset"] is True
        again = api.delete("/users/breakglass/second-factor")
        assert again.json()["reset"] is False
        assert api.get("/users/breakglass").json()["second_factor"] is False
    with httpx.Client(base_url=system.url, timeout=30, follow_redirects=False) as browser:
        assert _signin(browser, "breakglass", new.password).status_code == 303
        held = browser.get("/grants")
        assert held.headers["location"] == "/account/second-factor"
