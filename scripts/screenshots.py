"""`make screenshots`: PNGs of the web console for the README, taken in Debian's Chromium.

Runs the product as `jitadmin demo` does (SQLite in a temporary directory, in-process
emulators, the worker), walks through sign-in, the form, the result and the console, and
writes docs/screenshots/*.png. Nothing leaves loopback.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright
from pydantic import SecretStr

from jitadmin.emulators.runner import serve_in_thread
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.entrypoints.api.app import create_app
from jitadmin.entrypoints.demo import seed
from jitadmin.entrypoints.worker import attach_worker
from jitadmin.settings import Settings
from jitadmin.wiring import build

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Request admin access")).to_be_visible()


def shoot(page: Page, name: str) -> None:
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path.relative_to(OUT.parent.parent)}")


def main() -> int:
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: run `make system-packages`", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=f"sqlite:///{tmp}/jitadmin.db",
            secret_key=SecretStr(secrets.token_urlsafe(48)),
        )
        world = EmulatorWorld()
        world.start()
        app = build(settings)
        users = seed(app, world)
        worker = attach_worker(app)
        worker.start()
        server = serve_in_thread(create_app(app))
        try:
            take(server.url, users)
        finally:
            server.stop()
            worker.stop()
            world.stop()
            app.close()
    return 0


def take(url: str, users: dict[str, dict[str, str]]) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        viewport = {"width": 1280, "height": 800}
        tech = browser.new_context(base_url=url, viewport=viewport)  # type: ignore[arg-type]
        page = tech.new_page()
        page.goto("/signin")
        shoot(page, "signin")

        technician = users["technician"]
        sign_in(page, technician["username"], technician["password"])
        page.get_by_label("Customer").select_option(label="Pedro Aviary")
        ticket = "#48211 — Install line-of-business app on FS01"
        expect(page.get_by_label("Ticket").locator("option", has_text=ticket)).to_have_count(1)
        page.get_by_label("Ticket").select_option(label=ticket)
        page.get_by_label("Duration (minutes)").fill("30")
        page.get_by_label("Reason").fill("Install the line-of-business app on FS01 (needs GA)")
        shoot(page, "form")

        started = time.monotonic()
        page.get_by_role("button", name="Request access").click()
        expect(page.locator("#grant-state")).to_have_text("Active", timeout=30_000)
        print(f"  form submit to Active: {time.monotonic() - started:.2f} s")
        shoot(page, "result")
        tech.close()

        boss = browser.new_context(base_url=url, viewport=viewport)  # type: ignore[arg-type]
        page = boss.new_page()
        sign_in(page, users["admin"]["username"], users["admin"]["password"])
        page.goto("/grants")
        shoot(page, "console")
        page.locator("#grants-table a").first.click()
        expect(page.locator("#ticket-summary")).to_contain_text("48211")
        shoot(page, "grant")
        page.goto("/admin/customers")
        shoot(page, "admin-customers")
        boss.close()
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
