"""The approvals page in Chromium: the requester's result page says "waiting for approval" and
follows the state live; an approver refuses a rejection without a comment, then approves; the
requester can cancel a pending request; a technician is refused the page."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, expect

from support.receiver import receiver, subscribe
from support.system import System
from support.waiting import wait_for
from support.web import LIFECYCLE_MS, fill_request, new_context, sign_in, sign_in_as

pytest_plugins = ("web_fixtures",)

APPROVER = "approver.web@msp.example"


def require_approval(system: System) -> str:
    """The demo customer's M365 requests need one approval; an approver's password."""
    with system.client("admin") as api:
        saved = api.put("/customers/pedroaviary/policy", json={"approval_required": ["m365"]})
        assert saved.status_code == 200, saved.text
        made = api.post("/users", json={"username": APPROVER, "role": "approver"})
        assert made.status_code == 201, made.text
    return str(made.json()["password"])


def request_and_wait(page: Page, system: System) -> str:
    sign_in(page, system)
    fill_request(page)
    page.get_by_role("button", name="Request access").click()
    expect(page.locator("#grant-state")).to_have_text("Pending approval")
    expect(page.locator("#grant-state-note")).to_have_text("waiting for approval")
    expect(page.locator("#waiting-for-approval")).to_be_visible()
    expect(page.locator("#grant-password")).to_be_visible()
    status_url = page.locator("#grant-status").get_attribute("data-status-url") or ""
    return status_url.split("/")[-2]


def test_an_approver_decides_and_the_result_page_follows(
    browser: Browser, page: Page, web: System
) -> None:
    password = require_approval(web)
    grant_id = request_and_wait(page, web)
    expect(page.get_by_role("link", name="Approvals")).to_have_count(0)  # not a technician's

    approver_context = new_context(browser, web)
    approver = approver_context.new_page()
    sign_in_as(approver, APPROVER, password)
    approver.get_by_role("link", name="Approvals").click()
    row = approver.locator(f"#approval-{grant_id}")
    expect(row).to_contain_text(web.users["technician"]["username"])
    expect(row).to_contain_text("Fix the mail flow rule")
    expect(row).to_contain_text("30 minutes")
    expect(row).to_contain_text("0 of 1")
    # The ticket as the PSA has it now, with its summary.
    expect(approver.locator(f"#ticket-{grant_id}")).to_contain_text(
        "Install line-of-business app on FS01"
    )
    row.get_by_role("button", name="Reject").click()
    expect(approver.locator(f"#decision-error-{grant_id}")).to_contain_text("comment")
    assert web.grant(grant_id)["state"] == "pending_approval"
    approver.locator(f"#approval-{grant_id}").get_by_label("Comment (optional)").fill("ok")
    approver.locator(f"#approval-{grant_id}").get_by_role("button", name="Approve").click()
    expect(approver.get_by_role("status").first).to_contain_text("Approved")
    expect(approver.locator(f"#approval-{grant_id}")).to_have_count(0)
    approver_context.close()

    # The requester's page, still open, follows the grant to active.
    expect(page.locator("#grant-state")).to_have_text("Active", timeout=LIFECYCLE_MS)
    expect(page.locator("#grant-state-note")).to_have_text("")
    approvals = web.grant(grant_id)["approvals"]
    assert [a["by"] for a in approvals] == [APPROVER]


def test_the_requester_cancels_and_a_technician_may_not_open_approvals(
    page: Page, web: System
) -> None:
    require_approval(web)
    grant_id = request_and_wait(page, web)
    page.get_by_role("button", name="Cancel the request").click()
    expect(page.get_by_role("status").first).to_contain_text("cancelled")
    expect(page.locator("#grant-state")).to_have_text("Cancelled")
    assert web.grant(grant_id)["state"] == "cancelled"
    response = page.goto("/approvals")
    assert response is not None and response.status == 403


def test_an_approver_decides_from_the_link_in_the_notification(
    browser: Browser, page: Page, web: System
) -> None:
    """The approval_requested notification links to the grant's page: signed out, the approver
    signs in first and lands there, decides on it (a rejection without a reason is refused
    in place), and the grant goes on."""
    password = require_approval(web)
    with receiver() as hook:
        subscribe(web, hook, ["grant.approval_requested"], "a-webhook-secret-of-the-msp")
        grant_id = request_and_wait(page, web)
        told = wait_for(hook.accepted_once, what="the approval_requested notification")
    [notification] = told.values()
    link = str(notification.json()["url"])
    assert urlsplit(link).path == f"/grants/{grant_id}"

    approver_context = new_context(browser, web)
    approver = approver_context.new_page()
    approver.goto(urlsplit(link).path)  # the link as clicked, on this test's own address
    approver.get_by_label("Username").fill(APPROVER)
    approver.get_by_label("Password").fill(password)
    approver.get_by_role("button", name="Sign in").click()
    decide = approver.locator("#decide")
    expect(decide.get_by_role("heading", name="Decide on this request")).to_be_visible()
    assert urlsplit(approver.url).path == f"/grants/{grant_id}"
    decide.get_by_role("button", name="Reject").click()
    expect(approver.locator(f"#decision-error-{grant_id}")).to_contain_text("comment")
    assert web.grant(grant_id)["state"] == "pending_approval"
    approver.locator("#decide").get_by_role("button", name="Approve").click()
    expect(approver.get_by_role("status").first).to_contain_text("Approved")
    assert urlsplit(approver.url).path == f"/grants/{grant_id}"
    approver_context.close()
    expect(page.locator("#grant-state")).to_have_text("Active", timeout=LIFECYCLE_MS)
    assert [a["by"] for a in web.grant(grant_id)["approvals"]] == [APPROVER]


def test_the_requester_sees_no_decision_forms_on_their_own_request(page: Page, web: System) -> None:
    require_approval(web)
    grant_id = request_and_wait(page, web)
    page.goto(f"/grants/{grant_id}")
    expect(page.locator("#grant-approvals")).to_contain_text("0 of 1")
    expect(page.locator("#decide")).to_have_count(0)
