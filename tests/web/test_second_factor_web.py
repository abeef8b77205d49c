"""The TOTP second factor in a real Chromium, with admins required to use it: held on the
enrolment page after a password-only sign-in, enrolment, then sign-in with a code (a reused one
refused) and with a recovery code (which works once)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from jitadmin.core import totp

from support.system import System, start_system, stop_system
from support.web import new_context

pytest_plugins = ("web_fixtures",)
FAILED = "Unknown username or wrong password or authentication code."


@pytest.fixture
def strict_web(tmp_path: Path) -> Iterator[System]:
    running = start_system(tmp_path, with_worker=False, totp_required_roles="admin")
    yield running
    stop_system(running)


def _sign_in(page: Page, system: System, code: str = "") -> None:
    page.goto("/signin")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(system.users["admin"]["password"])
    page.get_by_label("Authentication code").fill(code)
    page.get_by_role("button", name="Sign in").click()


def _fresh(browser: Browser, system: System) -> Page:
    return new_context(browser, system).new_page()


def test_totp_enrolment_and_sign_in(browser: Browser, strict_web: System) -> None:
    system = strict_web
    page = _fresh(browser, system)
    _sign_in(page, system)
    page.goto("/admin/users")  # held: only the enrolment page until a factor is set up
    expect(page).to_have_url(re.compile(r"/account/second-factor$"))
    expect(page.get_by_text("Your role must sign in with a second factor")).to_be_visible()
    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = page.locator("#totp-secret").inner_text()
    expect(page.locator("#totp-uri")).to_contain_text(
        f"otpauth://totp/jitadmin%3Aadmin?secret={secret}"
    )
    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_contain_text("does not match")
    code = totp.code_at(secret, system.app.ctx.clock.now().timestamp())
    page.get_by_label("Code from the app").fill(code)
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#recovery-codes code")).to_have_count(10)
    recovery = page.locator("#recovery-codes code").first.inner_text()
    page.goto("/admin/users")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    page.context.close()

    again = _fresh(browser, system)
    _sign_in(again, system, code)  # the confirming code: already used
    expect(again.get_by_role("alert")).to_have_text(FAILED)
    _sign_in(again, system, recovery)
    expect(again.get_by_role("heading", name="Request admin access")).to_be_visible()
    again.context.close()

    last = _fresh(browser, system)
    _sign_in(last, system, recovery)  # a recovery code works once
    expect(last.get_by_role("alert")).to_have_text(FAILED)
    last.context.close()
