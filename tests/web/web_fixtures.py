"""Browser fixtures: Debian's Chromium (no downloaded browser) driving a whole jitadmin.

Loaded by the web test modules through ``pytest_plugins``; the helpers they use (launching
Chromium, signing in, filling the form) are in ``tests/support/web.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from jitadmin.adapters.clock import ManualClock

from support.system import System, start_system, stop_system
from support.web import launch, new_context


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[System]:
    running = start_system(tmp_path)
    yield running
    stop_system(running)


@pytest.fixture
def web_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def clocked_web(tmp_path: Path, web_clock: ManualClock) -> Iterator[System]:
    running = start_system(tmp_path, clock=web_clock)
    yield running
    stop_system(running)


@pytest.fixture
def page(browser: Browser, web: System) -> Iterator[Page]:
    context = new_context(browser, web)
    yield context.new_page()
    context.close()
