"""The request form in Chromium: tickets follow the customer, Refresh, field errors, PSA down."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from jitadmin.core.passwords import check_password

from support.system import System
from support.web import choose_ticket, fill_request, sign_in

# The browser and system fixtures (a plugin, so they are not shadowed by test arguments).
pytest_plugins = ("web_fixtures",)


PEDRO_TICKET = "#48211 — Install line-of-business app on FS01"
NORTHWIND_TICKET = "#48301 — Rotate break-glass credentials"


def grants_written(system: System) -> int:
    with system.app.ctx.uow() as uow:
        return len(uow.grants.find())


def test_full_m365_request_through_the_form(page: Page, web: System) -> None:
    sign_in(page, web)
    for label in ("Identity Provider", "Customer", "Ticket", "Duration (minutes)", "Reason",
                  "Temporary Password"):  # fmt: skip
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    customer = page.get_by_label("Customer")
    # Only the customers this user may use, and only the identity providers configured.
    expect(customer.locator("option")).to_have_text(
        ["Choose a customer…", "Northwind Traders", "Pedro Aviary"]
    )
    ticket = page.get_by_label("Ticket")
    choose_ticket(page, "Pedro Aviary", PEDRO_TICKET)
    expect(ticket.locator("option")).to_have_count(4)  # "Choose a ticket…" + 3 open tickets
    expect(ticket.locator("option", has_text="Printer offline")).to_have_count(0)  # closed
    provider = page.get_by_label("Identity Provider")
    expect(provider.locator("option:not([disabled])")).to_have_text(["M365"])
    # The ticket list follows the customer, both ways.
    customer.select_option(label="Northwind Traders")
    expect(ticket.locator("option", has_text=NORTHWIND_TICKET)).to_have_count(1)
    expect(ticket.locator("option", has_text="48211")).to_have_count(0)
    choose_ticket(page, "Pedro Aviary", PEDRO_TICKET)
    expect(ticket.locator("option", has_text="48301")).to_have_count(0)

    page.get_by_label("Duration (minutes)").fill("30")
    page.get_by_label("Reason").fill("Install the line-of-business app on FS01")
    password = page.get_by_label("Temporary Password").input_value()
    page.evaluate("window.sameDocument = true")
    page.get_by_role("button", name="Request access").click()

    expect(page.get_by_role("heading", name="Access requested")).to_be_visible()
    expect(page.locator("#grant-password")).to_have_text(password)
    expect(page.get_by_text("This is the only time the password is shown.")).to_be_visible()
    username = page.locator("#grant-username").inner_text()
    assert username.endswith("@pedroaviary.onmicrosoft.com")
    expect(page.locator("#grant-expires")).to_contain_text("UTC")
    page.evaluate("window.resultPage = true")
    # Provisioning → active, updated in place by polling: the page is never reloaded.
    expect(page.locator("#grant-state")).to_have_text("Active", timeout=30_000)
    assert page.evaluate("window.resultPage") is True
    expect(page.locator("#extend-form")).to_be_visible()

    with web.client() as api:
        (grant,) = api.get("/grants").json()["items"]
    assert grant["state"] == "active"
    assert grant["username"] == username
    assert grant["ticket_id"] == "48211"
    assert grant["requester"] == web.users["technician"]["username"]
    # The password went nowhere but the sealed column: not into the page's URL or storage.
    assert password not in page.url
    assert password not in str(page.context.cookies())
    assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"


def test_refresh_changes_the_password_and_copy_copies_it(page: Page, web: System) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, web)
    field = page.get_by_label("Temporary Password")
    first = field.input_value()
    assert check_password(first) == first
    page.get_by_role("button", name="Refresh").click()
    expect(field).not_to_have_value(first)
    second = field.input_value()
    assert check_password(second) == second
    expect(page.get_by_role("heading", name="Request admin access")).to_be_visible()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == second


def test_a_validation_error_is_shown_at_its_field_and_the_form_keeps_the_input(
    page: Page, web: System
) -> None:
    sign_in(page, web)
    fill_request(page, minutes="900", reason="Reset the break-glass account")
    password = page.get_by_label("Temporary Password").input_value()
    page.get_by_role("button", name="Request access").click()

    duration = page.get_by_label("Duration (minutes)")
    error = page.locator("#duration_minutes-error")
    expect(error).to_have_text("must be between 1 and 480 minutes")
    # Tied to its field, for screen readers and for the eye.
    expect(duration).to_have_attribute("aria-describedby", "duration_minutes-error")
    expect(duration).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_have_count(1)
    # Everything typed is still there, including the ticket loaded from the PSA.
    expect(duration).to_have_value("900")
    expect(page.get_by_label("Reason")).to_have_value("Reset the break-glass account")
    expect(page.get_by_label("Temporary Password")).to_have_value(password)
    expect(page.get_by_label("Customer")).to_have_value("pedroaviary")
    expect(page.get_by_label("Ticket")).to_have_value("48211")
    expect(page.get_by_label("Ticket").locator("option:checked")).to_have_text(PEDRO_TICKET)
    assert grants_written(web) == 0

    # Fixing one error shows the next at its own field; nothing is written meanwhile.
    page.get_by_label("Duration (minutes)").fill("soon")
    page.get_by_label("Temporary Password").fill("short")
    page.get_by_role("button", name="Request access").click()
    expect(page.locator("#duration_minutes-error")).to_have_text(
        "must be a whole number of minutes"
    )
    page.get_by_label("Duration (minutes)").fill("30")
    page.get_by_role("button", name="Request access").click()
    expect(page.locator("#password-error")).to_have_text("must be 16 to 128 characters long")
    expect(page.get_by_label("Temporary Password")).to_have_attribute(
        "aria-describedby", "password-hint password-error"
    )
    assert grants_written(web) == 0


def test_the_form_renders_without_the_psa(page: Page, web: System) -> None:
    sign_in(page, web)
    admin_url = web.world.psa_settings()["admin_url"]
    httpx.put(f"{admin_url}/faults", json={"outage": True}).raise_for_status()
    page.goto("/")
    expect(page.get_by_role("heading", name="Request admin access")).to_be_visible()
    expect(page.get_by_label("Temporary Password")).not_to_have_value("")
    page.get_by_label("Customer").select_option(label="Pedro Aviary")
    expect(page.locator("#ticket_id-hint")).to_contain_text("Could not load tickets")
    httpx.delete(f"{admin_url}/faults").raise_for_status()
    # Choosing the customer again retries; the tickets arrive as soon as the PSA answers.
    page.get_by_label("Customer").select_option(label="Northwind Traders")
    expect(page.get_by_label("Ticket").locator("option", has_text="48301")).to_have_count(1)
