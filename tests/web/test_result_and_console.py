"""After submit: live state, extend, end access now; the console's roles and visibility."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, Page, expect

from support.system import System
from support.web import (
    LIFECYCLE_MS,
    fill_request,
    horizontal_overflow,
    new_context,
    sign_in,
    sign_in_as,
)

# The browser and system fixtures (a plugin, so they are not shadowed by test arguments).
pytest_plugins = ("web_fixtures",)


ADMIN_PAGES = (
    "/admin", "/admin/customers", "/admin/psa", "/admin/users", "/admin/tokens",
    "/admin/notifications",
)  # fmt: skip


def request_through_form(page: Page, system: System) -> str:
    sign_in(page, system)
    fill_request(page)
    page.get_by_role("button", name="Request access").click()
    expect(page.locator("#grant-state")).to_have_text("Active", timeout=LIFECYCLE_MS)
    status_url = page.locator("#grant-status").get_attribute("data-status-url") or ""
    return status_url.split("/")[-2]


def test_result_page_extends_and_ends_access_now(page: Page, web: System) -> None:
    grant_id = request_through_form(page, web)
    before = web.grant(grant_id)["expires_at"]
    minutes = page.get_by_label("Extend by (minutes)")
    minutes.fill("lots")
    page.get_by_role("button", name="Extend").click()
    expect(page.locator("#minutes-error")).to_have_text(
        "Input should be a valid integer, unable to parse string as an integer"
    )
    expect(minutes).to_have_attribute("aria-invalid", "true")
    minutes.fill("15")
    page.get_by_role("button", name="Extend").click()
    expect(page.locator("#minutes-error")).to_be_hidden()
    after = web.grant(grant_id)["expires_at"]
    assert after > before
    expect(page.locator("#grant-expires")).to_have_attribute("datetime", after)
    # The password is still on screen: extending did not navigate away.
    expect(page.locator("#grant-password")).to_be_visible()

    page.get_by_role("button", name="End access now").click()
    expect(page.locator("#grant-state")).to_have_text("Revoked", timeout=LIFECYCLE_MS)
    expect(page.get_by_role("button", name="End access now")).to_be_hidden()
    ended = web.grant(grant_id)
    assert ended["state"] == "revoked"
    assert any(e["kind"] == "grant.revoking" and e["actor"] == ended["requester"]
               for e in ended["events"])  # fmt: skip


def test_end_access_without_javascript_falls_back_to_a_form_post(
    browser: Browser, web: System
) -> None:
    with web.client() as api:
        created = api.post("/grants", json={
            "customer": "pedroaviary", "identity_provider": "m365", "ticket_id": "48212",
            "duration_minutes": 20, "reason": "Mailbox and licences for the new starter",
        }).json()  # fmt: skip
    web.wait_state(created["id"], "active")
    context = browser.new_context(base_url=web.url, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, web)
    page.goto(f"/grants/{created['id']}")
    page.get_by_role("button", name="End access now").click()
    expect(page.get_by_role("status").first).to_contain_text("Access is being taken away")
    web.wait_state(created["id"], "revoked")
    context.close()


def test_technician_gets_403_from_every_management_page(page: Page, web: System) -> None:
    sign_in(page, web)
    expect(page.get_by_role("link", name="Customers")).to_have_count(0)
    for path in ADMIN_PAGES:
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    posted = page.request.post("/admin/users", form={"csrf_token": csrf, "username": "mallory",
                                                       "role": "admin"})  # fmt: skip
    assert posted.status == 403
    with web.client("admin") as api:
        assert "mallory" not in [u["username"] for u in api.get("/users").json()["items"]]


def test_technician_cannot_see_another_technicians_grants(
    browser: Browser, page: Page, web: System
) -> None:
    with web.client("admin") as api:
        other = api.post("/users", json={"username": "other.tech@msp.example",
                                         "role": "technician"}).json()  # fmt: skip
    body = {
        "customer": "pedroaviary", "identity_provider": "m365", "ticket_id": "48213",
        "duration_minutes": 20, "reason": "Review the Conditional Access policies",
    }  # fmt: skip
    with web.client(None) as api:
        bearer = {"Authorization": f"Bearer {other['token']}"}
        created = api.post("/grants", headers=bearer, json=body).json()
    grant_id = created["id"]

    sign_in(page, web)
    page.goto("/grants")
    expect(page.get_by_role("heading", name="My grants")).to_be_visible()
    expect(page.get_by_text("No grants")).to_be_visible()
    response = page.goto(f"/grants/{grant_id}")
    assert response is not None and response.status == 404
    assert created["username"] not in page.content()
    for path in (f"/web/api/grants/{grant_id}/status", f"/web/api/grants/{grant_id}/ticket"):
        assert page.request.get(path).status == 404, path
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    assert page.request.post(f"/grants/{grant_id}/revoke", form={"csrf_token": csrf},
                             max_redirects=0).status == 404  # fmt: skip
    assert web.grant(grant_id)["state"] in ("provisioning", "active")

    # The other technician sees it.
    context = new_context(browser, web)
    theirs = context.new_page()
    sign_in_as(theirs, "other.tech@msp.example", other["password"])
    theirs.goto("/grants")
    expect(theirs.locator("#grants-table tbody tr")).to_have_count(1)
    context.close()


def test_password_reveal_needs_a_reason_and_is_audited(page: Page, web: System) -> None:
    with web.client() as api:
        created = api.post("/grants", json={
            "customer": "pedroaviary", "identity_provider": "m365", "ticket_id": "48211",
            "duration_minutes": 30, "reason": "Install the line-of-business app on FS01",
        }).json()  # fmt: skip
    sign_in(page, web, "admin")
    page.goto("/grants")
    expect(page.get_by_role("heading", name="All grants")).to_be_visible()
    page.get_by_label("Requester").fill("example.user")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#grants-table tbody tr")).to_have_count(1)
    page.locator("#grants-table tbody a").click()
    expect(page.locator("#ticket-summary")).to_have_text(
        "#48211 — Install line-of-business app on FS01 (In Progress)"
    )
    expect(page.locator("#timeline")).to_contain_text("grant.requested")

    # Without a reason and the confirmation nothing is revealed, and nothing audited.
    page.get_by_role("button", name="Reveal password").click()
    expect(page.locator("#reveal_reason-error")).to_be_visible()
    expect(page.locator("#confirm-error")).to_be_visible()
    expect(page.locator("#revealed-password")).to_have_count(0)

    page.get_by_label("Why do you need it?").fill("Technician lost the password mid-change")
    page.get_by_label("I understand that this reveal is recorded").check()
    page.get_by_role("button", name="Reveal password").click()
    expect(page.locator("#revealed-password")).to_have_text(created["password"])
    expect(page.locator("#timeline")).to_contain_text("grant.password_revealed")
    with web.client("admin") as api:
        events = api.get("/audit", params={"grant_id": created["id"]}).json()["items"]
    reveals = [e for e in events if e["kind"] == "grant.password_revealed"]
    assert len(reveals) == 1
    assert reveals[0]["actor"] == "admin"
    assert reveals[0]["data"]["reason"] == "Technician lost the password mid-change"


def test_management_pages_connections_users_and_tokens(page: Page, web: System) -> None:
    sign_in(page, web, "admin")
    page.goto("/admin/customers")
    page.locator("#test-pedroaviary-m365").click()
    expect(page.locator("#test-result-pedroaviary-m365")).to_contain_text("Connection works.")
    assert horizontal_overflow(page) == 0
    page.goto("/admin/psa")
    expect(page.get_by_text("Connected to connectwise")).to_be_visible()
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result-psa")).to_contain_text("Connection works.")
    assert page.get_by_label("private_key").input_value() == ""  # secrets are write-only

    page.goto("/admin/users")
    page.get_by_label("Username").fill("auditor.one@msp.example")
    page.get_by_label("Role").select_option("auditor")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator("#created-user")).to_contain_text("auditor.one@msp.example")
    token = page.locator("#created-token").inner_text()
    expect(page.locator("#users-table")).to_contain_text("auditor")

    page.goto("/admin/tokens")
    page.get_by_role("button", name="Issue token").click()  # for the admin themself only
    expect(page.locator("#issued-token")).to_contain_text("the new token for admin.")
    issued = page.locator("#issued-token-value").inner_text()
    with web.client(None) as api:
        for t in (token, issued):
            assert api.get("/grants", headers={"Authorization": f"Bearer {t}"}).status_code == 200
    # The auditor's first token (shown once at creation) is the one revoked here.
    hint = page.locator("#tokens-table tr", has_text="auditor.one").last
    hint.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    with web.client(None) as api:
        codes = sorted(
            api.get("/grants", headers={"Authorization": f"Bearer {t}"}).status_code
            for t in (token, issued)
        )
    assert codes == [200, 401]


def test_pages_fit_a_1280_pixel_laptop_screen(page: Page, web: System) -> None:
    grant_id = request_through_form(page, web)
    assert horizontal_overflow(page) == 0
    for path in ("/", "/grants", f"/grants/{grant_id}"):
        page.goto(path)
        expect(page.locator("main")).to_be_visible()
        assert horizontal_overflow(page) == 0, path


def test_result_page_shows_a_failed_grant_with_its_reason(page: Page, web: System) -> None:
    sign_in(page, web)
    fill_request(page)
    graph_admin = web.world.graph_settings(web.world.customers[0])["admin_url"]
    # The account's creation is refused as if the app had lost its permission (permanent).
    # (Not just "the next POST": the request itself may fetch a token to check the domain.)
    fault = {"error_status": 403, "match": "POST /v1.0/users", "error_count": 1}
    httpx.put(f"{graph_admin}/faults", json=fault).raise_for_status()
    page.get_by_role("button", name="Request access").click()
    failure = page.locator("#grant-failure")
    expect(failure).to_contain_text("Provisioning failed:", timeout=LIFECYCLE_MS)
    with web.client() as api:
        (grant,) = api.get("/grants").json()["items"]
    failed = [e for e in web.grant(grant["id"])["events"] if e["kind"] == "grant.failed"]
    expect(failure).to_have_text(f"Provisioning failed: {failed[0]['data']['error']}")
    # Whatever was half made is cleaned up, and the page follows that too.
    expect(page.locator("#grant-state")).to_have_text("Revoked", timeout=LIFECYCLE_MS)
    expect(page.get_by_role("button", name="End access now")).to_be_hidden()
