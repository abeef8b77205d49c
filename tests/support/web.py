"""Helpers for the browser tests: launching Debian's Chromium, signing in, filling the form."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from support.system import System

CHROMIUM = os.environ.get("JITADMIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 30_000  # generous: Chromium shares 2 cores with the services; only failures wait
# Provisioning and revocation go through the worker and the Graph emulator.
LIFECYCLE_MS = 30_000


def launch(playwright: Any) -> Browser:
    if not Path(CHROMIUM).exists():
        # Never a skip: `make test` installs Debian's chromium (make system-packages).
        pytest.fail(f"{CHROMIUM} is missing: run `make system-packages` (apt-get install chromium)")
    browser: Browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    return browser


def new_context(browser: Browser, system: System) -> BrowserContext:
    context = browser.new_context(base_url=system.url, viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    return context


def sign_in(page: Page, system: System, role: str = "technician") -> None:
    user = system.users[role]
    sign_in_as(page, user["username"], user["password"])


def sign_in_as(page: Page, username: str, password: str) -> None:
    page.goto("/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Request admin access")).to_be_visible()


def choose_ticket(page: Page, customer: str, ticket_label: str) -> None:
    page.get_by_label("Customer").select_option(label=customer)
    ticket = page.get_by_label("Ticket")
    expect(ticket.locator("option", has_text=ticket_label)).to_have_count(1)
    ticket.select_option(label=ticket_label)


def fill_request(
    page: Page, *, minutes: str = "30", reason: str = "Fix the mail flow rule"
) -> None:
    page.get_by_label("Identity Provider").select_option(label="M365")
    choose_ticket(page, "Pedro Aviary", "#48211 — Install line-of-business app on FS01")
    page.get_by_label("Duration (minutes)").fill(minutes)
    page.get_by_label("Reason").fill(reason)


def horizontal_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0 when nothing breaks out)."""
    overflow: int = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow
