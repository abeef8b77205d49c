"""Customers and connections shows each customer's on-prem agents with their state, makes a
one-time enrollment code (shown once) and revokes an agent (in Chromium)."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from jitadmin.agent.signing import new_private_key, public_key, signature_headers
from jitadmin.services import agents

from support.system import System
from support.web import horizontal_overflow, sign_in

pytest_plugins = ("web_fixtures",)


def _enroll(web: System, code: str) -> str:
    """What `jitadmin agent enroll` sends, handed to the service directly (no DC here)."""
    private = new_private_key()
    body = json.dumps({"code": code, "name": "dc1-agent", "public_key": public_key(private),
                       "version": "1.0", "domain": "pedroaviary.local"}).encode()  # fmt: skip
    path = "/api/v1/agent/enroll"
    headers = signature_headers(
        private, None, "POST", path, body,
        timestamp=int(web.app.ctx.clock.now().timestamp()),
    )  # fmt: skip
    signed = agents.SignedRequest(
        "POST", path, body, "", headers["X-Jitadmin-Timestamp"], headers["X-Jitadmin-Nonce"],
        headers["X-Jitadmin-Signature"],
    )  # fmt: skip
    return agents.enroll(web.app.ctx, signed).id


def test_agents_enrollment_code_state_and_revoke(page: Page, web: System) -> None:
    sign_in(page, web, "admin")
    page.goto("/admin/customers")
    expect(page.locator("#agents-pedroaviary")).to_contain_text("No agent enrolled.")
    page.locator("#enroll-pedroaviary").click()
    shown = page.locator("#enrollment-pedroaviary code").first.inner_text()
    assert len(shown) >= 32
    agent_id = _enroll(web, shown)
    page.goto("/admin/customers")
    row = page.locator(f"#agent-{agent_id}")
    expect(row).to_contain_text("dc1-agent")
    expect(row).to_contain_text("online")
    assert shown not in page.content()  # shown once
    assert horizontal_overflow(page) == 0
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("Agent dc1-agent of pedroaviary revoked.")
    expect(page.locator(f"#agent-{agent_id}")).to_contain_text("revoked")
