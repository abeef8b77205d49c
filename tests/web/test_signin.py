"""Sign-in, sessions and CSRF in a real Chromium: cookies, expiry, sign-out, audit."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from playwright.sync_api import Browser, Page, expect

from jitadmin.adapters.clock import ManualClock
from jitadmin.services.sessions import session_hash

from support.system import System
from support.web import new_context, sign_in

# The browser and system fixtures (a plugin, so they are not shadowed by test arguments).
pytest_plugins = ("web_fixtures",)


def audit_kinds(system: System) -> list[str]:
    with system.app.ctx.uow() as uow:
        return [e.kind for e in uow.audit.entries(limit=10_000)]


def test_sign_in_wrong_password_then_right_then_out(page: Page, web: System) -> None:
    page.goto("/grants")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fgrants"))
    user = web.users["technician"]
    page.get_by_label("Username").fill(user["username"])
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Unknown username or wrong password or authentication code."
    )
    expect(page.get_by_label("Username")).to_have_value(user["username"])
    assert "auth.sign_in_failed" in audit_kinds(web)

    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Sign in").click()
    # Back where the visitor wanted to go.
    expect(page.get_by_role("heading", name="My grants")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/grants$"))

    cookie = next(c for c in page.context.cookies() if c["name"] == "jitadmin_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http on loopback; "auto" sets it under https
    with web.app.ctx.uow() as uow:
        stored = uow.web_sessions.get(session_hash(web.app.ctx, cookie["value"]))
        assert uow.web_sessions.get(cookie["value"]) is None  # only the keyed hash is stored
        plain = hashlib.sha256(cookie["value"].encode()).hexdigest()
        assert uow.web_sessions.get(plain) is None  # not a bare SHA-256 either
    assert stored is not None and stored.username == user["username"]
    assert "auth.signed_in" in audit_kinds(web)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    assert "auth.signed_out" in audit_kinds(web)
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The old cookie is dead on the server too, not just forgotten by the browser.
    with web.app.ctx.uow() as uow:
        assert uow.web_sessions.get(stored.id_hash) is None


def test_keyboard_only_sign_in_and_form_order(page: Page, web: System) -> None:
    user = web.users["technician"]
    page.goto("/signin")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(user["username"])
    page.keyboard.press("Tab")
    page.keyboard.type(user["password"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Request admin access")).to_be_visible()
    page.get_by_label("Identity Provider").focus()
    order = []
    for _ in range(7):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
    assert order == [
        "customer", "ticket_id", "duration_minutes", "reason", "password",
        "refresh-password", "copy-password",
    ]  # fmt: skip


def test_idle_session_expires(
    browser: Browser, clocked_web: System, web_clock: ManualClock
) -> None:
    context = new_context(browser, clocked_web)
    page = context.new_page()
    sign_in(page, clocked_web)
    web_clock.advance(timedelta(minutes=29))
    page.goto("/grants")
    expect(page.get_by_role("heading", name="My grants")).to_be_visible()
    web_clock.advance(timedelta(minutes=31))
    page.goto("/grants")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Your session has ended. Please sign in again.")
    context.close()


def test_absolute_session_expiry_despite_activity(
    browser: Browser, clocked_web: System, web_clock: ManualClock
) -> None:
    context = new_context(browser, clocked_web)
    page = context.new_page()
    sign_in(page, clocked_web)
    for _ in range(25):  # 25 x 29 minutes of steady use is past the 12-hour limit
        web_clock.advance(timedelta(minutes=29))
        page.goto("/grants")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    context.close()


def test_posts_without_the_csrf_token_are_refused(page: Page, web: System) -> None:
    sign_in(page, web)
    form: dict[str, str | float | bool] = {
        "identity_provider": "m365", "customer": "pedroaviary", "ticket_id": "48211",
        "duration_minutes": "30", "reason": "Fix the mail flow rule",
    }  # fmt: skip
    refused = page.request.post("/request", form=form, max_redirects=0)
    assert refused.status == 403
    wrong = page.request.post("/request", form={**form, "csrf_token": "forged"}, max_redirects=0)
    assert wrong.status == 403
    assert page.request.post("/web/api/password").status == 403
    assert page.request.post("/signout", max_redirects=0).status == 403
    with web.app.ctx.uow() as uow:
        assert uow.grants.find() == []
    # The sign-in form is protected too (double-submit cookie).
    other = page.context.browser.new_context(base_url=web.url)  # type: ignore[union-attr]
    user = web.users["technician"]
    response = other.request.post(
        "/signin", form={"username": user["username"], "password": user["password"]},
        max_redirects=0,
    )  # fmt: skip
    assert response.status == 403
    assert not [c for c in other.cookies() if c["name"] == "jitadmin_session"]
    other.close()
