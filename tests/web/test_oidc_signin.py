"""OpenID Connect sign-in in Chromium against a real OpenID Provider (npm's oidc-provider):
the button, the provider's login, back with the mapped role; the refusals as pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from support.oidc import (
    ADMIN,
    DISPLAY_NAME,
    NO_GROUP,
    NO_MFA,
    PASSWORD,
    TECHNICIAN,
    OpenIdProvider,
    start_oidc_system,
)
from support.system import System, stop_system
from support.web import new_context

pytest_plugins = ("web_fixtures", "support.oidc_fixtures")


@pytest.fixture
def context(browser: Browser, sso: System) -> Iterator[BrowserContext]:
    opened = new_context(browser, sso)
    yield opened
    opened.close()


def sign_in_sso(page: Page, login: str, *, start: str = "/grants", again: bool = False) -> None:
    """jitadmin's button, then the provider's own login page (``again``: the browser is still
    signed in at the provider, which sends it straight back, as single sign-on does)."""
    page.goto(start)
    page.get_by_role("link", name=f"Sign in with {DISPLAY_NAME}").click()
    if again:
        return
    expect(page.get_by_role("heading", name="Test OpenID Provider")).to_be_visible()
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()


def events(system: System, kind: str) -> list[dict[str, Any]]:
    with system.app.ctx.uow() as uow:
        return [dict(e.data) | {"actor": e.actor} for e in uow.audit.entries(limit=10_000)
                if e.kind == kind]  # fmt: skip


def test_admin_signs_in_through_the_provider_with_the_mapped_role(
    context: BrowserContext, sso: System, provider: OpenIdProvider
) -> None:
    page = context.new_page()
    sign_in_sso(page, ADMIN)
    # Back where the visitor wanted to go, signed in as the admin the groups claim maps to
    # (admins need TOTP for local sign-in here; the provider's MFA stands in for it).
    expect(page.get_by_role("heading", name="All grants")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/grants$"))
    expect(page.locator(".who")).to_have_text(f"{ADMIN} admin")
    expect(page.get_by_role("link", name="Users")).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "jitadmin_session")
    assert cookie["sameSite"] == "Strict" and cookie["httpOnly"]
    assert not [c for c in context.cookies() if c["name"] == "jitadmin_oidc"]  # used up

    with sso.app.ctx.uow() as uow:
        user = uow.users.get(ADMIN)
        bound = uow.users.external_identity(ADMIN)
        tokens = [t for t in uow.api_tokens.all() if t.username == ADMIN]
    assert user is not None and user.role == "admin" and user.customers is None
    assert bound == (provider.issuer, ADMIN)  # the provider's sub is the account id
    assert tokens == []  # an OIDC user gets no API token of its own
    (created,) = [e for e in events(sso, "user.created") if e["actor"] == "system:oidc"]
    assert created["user"] == ADMIN and created["role"] == "admin"
    signed = [e for e in events(sso, "auth.signed_in") if e.get("via") == "oidc"]
    assert len(signed) == 1
    assert signed[0]["amr"] == ["pwd", "mfa"] and signed[0]["issuer"] == provider.issuer

    # The user's page says how it signs in, and offers no password or TOTP reset.
    page.goto(f"/admin/users/{ADMIN}")
    expect(page.locator("#user-sign-in")).to_have_text(
        f"through single sign-on ({provider.issuer})"
    )
    expect(page.get_by_role("button", name="Reset password")).to_have_count(0)

    # A password sign-in as that user finds no password to check.
    other = context.browser.new_context(base_url=sso.url)  # type: ignore[union-attr]
    local = other.new_page()
    local.goto("/signin")
    local.get_by_label("Username").fill(ADMIN)
    local.get_by_label("Password", exact=True).fill("*oidc")
    local.get_by_role("button", name="Sign in", exact=True).click()
    expect(local.get_by_role("alert")).to_contain_text("Unknown username or wrong password")
    other.close()


def test_technician_gets_the_technician_role_and_it_follows_the_groups(
    context: BrowserContext, sso: System, provider: OpenIdProvider
) -> None:
    page = context.new_page()
    sign_in_sso(page, TECHNICIAN, start="/")
    expect(page.get_by_role("heading", name="Request admin access")).to_be_visible()
    expect(page.locator(".who")).to_have_text(f"{TECHNICIAN} technician")
    expect(page.get_by_role("link", name="Users")).to_have_count(0)

    # Moved to the admins' group at the provider: admin from the next sign-in on.
    provider.set_groups(TECHNICIAN, ["jit-admins"])
    page.get_by_role("button", name="Sign out").click()
    sign_in_sso(page, TECHNICIAN, start="/", again=True)
    expect(page.locator(".who")).to_have_text(f"{TECHNICIAN} admin")
    (updated,) = events(sso, "user.updated")
    assert updated["changes"] == {"role": {"from": "technician", "to": "admin"}}


def test_account_in_no_group_is_refused_and_nothing_is_created(
    context: BrowserContext, sso: System, provider: OpenIdProvider
) -> None:
    page = context.new_page()
    sign_in_sso(page, NO_GROUP)
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text(
        "Your account is not in a group that may use jitadmin."
    )
    assert not [c for c in context.cookies() if c["name"] == "jitadmin_session"]
    with sso.app.ctx.uow() as uow:
        assert uow.users.get(NO_GROUP) is None
    (refused,) = events(sso, "auth.oidc_refused")
    assert refused["user"] == NO_GROUP and refused["reason"] == "no role in the claims"
    assert refused["amr"] == ["pwd", "mfa"] and refused["issuer"] == provider.issuer
    page.get_by_role("link", name="Back to the sign-in page").click()
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()


def test_sign_in_without_mfa_is_refused(context: BrowserContext, sso: System) -> None:
    page = context.new_page()
    sign_in_sso(page, NO_MFA)
    expect(page.get_by_role("alert")).to_contain_text(
        "jitadmin needs a sign-in with multi-factor authentication"
    )
    with sso.app.ctx.uow() as uow:
        assert uow.users.get(NO_MFA) is None
    (refused,) = events(sso, "auth.oidc_refused")
    assert refused["reason"] == "no mfa in amr" and refused["amr"] == ["pwd"]


def test_user_whose_groups_no_longer_map_is_disabled_at_that_sign_in(
    browser: Browser, context: BrowserContext, sso: System, provider: OpenIdProvider
) -> None:
    first = context.new_page()
    sign_in_sso(first, TECHNICIAN, start="/")
    expect(first.locator(".who")).to_have_text(f"{TECHNICIAN} technician")

    provider.set_groups(TECHNICIAN, ["everyone"])
    second = new_context(browser, sso)
    page = second.new_page()
    sign_in_sso(page, TECHNICIAN)
    expect(page.get_by_role("alert")).to_have_text(
        "Your account is not in a group that may use jitadmin."
    )
    with sso.app.ctx.uow() as uow:
        user = uow.users.get(TECHNICIAN)
    assert user is not None and user.disabled
    (disabled,) = events(sso, "user.disabled")
    assert disabled["user"] == TECHNICIAN and disabled["actor"] == "system:oidc"
    assert disabled["sessions"] == 1
    # The session still open in the first browser ends on its next request.
    first.goto("/grants")
    expect(first.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()

    # Back in the group: still disabled until an admin enables the account.
    provider.set_groups(TECHNICIAN, ["jit-technicians"])
    sign_in_sso(page, TECHNICIAN, again=True)
    expect(page.get_by_role("alert")).to_contain_text("This account is disabled.")
    second.close()


def test_key_rotation_at_the_provider(
    browser: Browser, context: BrowserContext, sso: System, provider: OpenIdProvider
) -> None:
    page = context.new_page()
    sign_in_sso(page, ADMIN)
    expect(page.get_by_role("heading", name="All grants")).to_be_visible()
    old = provider.kid
    new = provider.rotate_key()  # the old key is gone from the provider's JWKS
    assert old != new
    again = new_context(browser, sso)
    second = again.new_page()
    sign_in_sso(second, ADMIN)
    # jitadmin's cached key set lacks the new kid: it fetched the JWKS again and went on.
    expect(second.get_by_role("heading", name="All grants")).to_be_visible()
    assert len([e for e in events(sso, "auth.signed_in") if e.get("via") == "oidc"]) == 2
    again.close()


def test_sign_in_page_without_local_form(
    browser: Browser, tmp_path: Path, provider: OpenIdProvider
) -> None:
    (tmp_path / "only-sso").mkdir()
    system = start_oidc_system(tmp_path / "only-sso", provider, local_signin=False)
    try:
        context = new_context(browser, system)
        page = context.new_page()
        page.goto("/signin")
        expect(page.get_by_role("link", name=f"Sign in with {DISPLAY_NAME}")).to_be_visible()
        expect(page.get_by_label("Username")).to_have_count(0)
        user = system.users["technician"]
        response = page.request.post(
            "/signin", form={"username": user["username"], "password": user["password"]}
        )
        assert response.status == 403
        assert not [c for c in context.cookies() if c["name"] == "jitadmin_session"]
        sign_in_sso(page, TECHNICIAN, start="/")
        expect(page.get_by_role("heading", name="Request admin access")).to_be_visible()
        context.close()
    finally:
        stop_system(system)
