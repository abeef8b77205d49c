"""The grant page shows the requester a Temporary Access Pass once, and a fallback's notice."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from support.m365_tap import PEDRO, choose_tap
from support.system import System
from support.web import LIFECYCLE_MS, fill_request, sign_in

pytest_plugins = ("web_fixtures",)


def request(web: System) -> str:
    with web.client() as api:
        created = api.post("/grants", json={
            "customer": "pedroaviary", "identity_provider": "m365", "ticket_id": "48211",
            "duration_minutes": 30, "reason": "Register the new admin's MFA",
        }).json()  # fmt: skip
    web.wait_state(created["id"], "active")
    return str(created["id"])


def test_the_requester_sees_the_pass_once_on_the_grant_page(page: Page, web: System) -> None:
    choose_tap(web)
    sign_in(page, web)
    fill_request(page)
    page.get_by_role("button", name="Request access").click()
    # The result page follows the grant live and says where the pass is, once issued.
    expect(page.locator("#grant-state")).to_have_text("Active", timeout=LIFECYCLE_MS)
    expect(page.locator("#grant-credential")).to_contain_text("Temporary Access Pass was issued")
    page.locator("#grant-credential a").click()
    grant_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    show = page.get_by_role("button", name="Show the Temporary Access Pass (once)")
    show.click()
    user = web.world.graph.find_user(PEDRO.tenant_id, web.grant(grant_id)["username"])
    assert user is not None and user.temporary_access_pass is not None
    expect(page.locator("#tap-value")).to_have_text(
        user.temporary_access_pass["temporaryAccessPass"], timeout=LIFECYCLE_MS
    )
    expect(page.locator("#tap-shown")).to_contain_text("only time")
    page.goto(f"/grants/{grant_id}")
    expect(page.locator("#tap-value")).to_have_count(0)
    page.get_by_role("button", name="Show the Temporary Access Pass (once)").click()
    expect(page.locator("#tap-error")).to_contain_text("already shown once")


def test_a_fallback_to_the_password_is_noticed_on_the_grant_page(page: Page, web: System) -> None:
    web.world.graph.set_tap_policy(PEDRO.tenant_id, state="disabled")
    choose_tap(web)
    grant_id = request(web)
    sign_in(page, web)
    page.goto(f"/grants/{grant_id}")
    expect(page.locator("#grant-credential")).to_contain_text("policy is disabled")
    expect(page.locator("#grant-credential")).to_contain_text("Sign in with the password")
    expect(page.get_by_role("button", name="Show the Temporary Access Pass (once)")).to_have_count(
        0
    )
