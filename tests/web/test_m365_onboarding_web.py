"""Onboarding through the web console in Chromium: the MSP app page (a certificate credential),
"Connect with admin consent" through the emulator's Entra consent prompt and back, a declined
consent shown plainly, and the page for a return without the session cookie."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from jitadmin.emulators.seed import CUSTOMERS

from support.certificates import make_certificate
from support.system import System
from support.web import sign_in

pytest_plugins = ("web_fixtures",)

NORTHWIND = CUSTOMERS[1]


def set_up_app_in_the_console(page: Page, web: System) -> None:
    cert = make_certificate("console MSP app")
    graph = web.world.graph_settings(NORTHWIND)
    with httpx.Client(base_url=f"{web.world.url}/graph", timeout=30) as admin:
        admin.post("/_admin/app-registration/certificates", json={"pem": cert.certificate_pem})
    sign_in(page, web, "admin")
    page.get_by_role("link", name="MSP app").click()
    redirect_uri = page.locator("#app-redirect-uri").inner_text()
    assert redirect_uri == f"{web.url}/admin/m365/consent"
    with httpx.Client(base_url=f"{web.world.url}/graph", timeout=30) as admin:
        admin.put("/_admin/app-registration", json={"redirect_uris": [redirect_uri]})
    page.get_by_label("client_id").fill(graph["client_id"])
    page.get_by_label("certificate_pem (optional)").fill(cert.certificate_pem)
    page.get_by_label("private_key_pem (optional)").fill(make_certificate("x").private_key_pem)
    page.get_by_label("authority_url (optional)").fill(graph["authority_url"])
    page.get_by_label("graph_url (optional)").fill(graph["base_url"])
    page.get_by_role("button", name="Save MSP app").click()
    # A key that is not the certificate's: refused beside its field, nothing saved.
    expect(page.locator("#private_key_pem-error")).to_contain_text("not the private key")
    expect(page.get_by_text("The MSP app is not set up yet.")).to_be_visible()
    page.get_by_label("private_key_pem (optional)").fill(cert.private_key_pem)
    page.get_by_role("button", name="Save MSP app").click()
    expect(page.get_by_role("status")).to_have_text("MSP app saved.")
    expect(page.locator("#app-current")).to_contain_text(graph["client_id"])
    expect(page.locator("#app-current")).not_to_contain_text("PRIVATE KEY")


def test_an_admin_connects_a_customer_through_admin_consent(page: Page, web: System) -> None:
    set_up_app_in_the_console(page, web)
    with web.client("admin") as api:
        saved = api.put("/customers/northwind/connections/m365",
                        json={"tenant_id": NORTHWIND.tenant_id})  # fmt: skip
        assert saved.status_code == 200, saved.text
    with httpx.Client(base_url=f"{web.world.url}/graph", timeout=30) as admin:
        admin.put(f"/_admin/tenants/{NORTHWIND.tenant_id}/consent", json={"consented": False})
    page.goto("/admin/customers")
    page.locator("#consent-northwind-m365").click()
    # Entra's prompt (the emulator's), as the customer's admin sees it.
    expect(page.get_by_role("heading", name="Permissions requested")).to_be_visible()
    expect(page.get_by_text("RoleManagement.ReadWrite.Directory")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    result = page.locator("#test-result-northwind-m365")
    expect(result).to_contain_text("Admin consent was not granted")
    expect(result).to_contain_text("AADSTS65004")
    page.locator("#consent-northwind-m365").click()
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("status").first).to_contain_text(
        f"Admin consent granted in tenant {NORTHWIND.tenant_id}."
    )
    expect(result).to_contain_text("Connection works.")
    expect(result).to_contain_text("token acquired")


def test_a_return_without_the_session_cookie_continues_from_our_origin(web: System) -> None:
    url = f"{web.url}/admin/m365/consent?admin_consent=True&tenant=x&state=y"
    answer = httpx.get(url, timeout=30)
    assert answer.status_code == 200
    assert 'id="consent-continue"' in answer.text
    assert "state=y" in answer.text


def grant_for(web: System, customer: str, ticket: str) -> str:
    with web.client() as api:
        created = api.post("/grants", json={
            "customer": customer, "identity_provider": "m365", "ticket_id": ticket,
            "duration_minutes": 30, "reason": "PIM on the grant page",
        })  # fmt: skip
        assert created.status_code == 202, created.text
    web.wait_state(created.json()["id"], "active")
    return str(created.json()["id"])


def test_the_grant_page_says_whether_the_tenant_ends_the_role_itself(
    page: Page, web: System
) -> None:
    pedro = CUSTOMERS[0]
    web.world.graph.set_p2(pedro.tenant_id, True)
    with_pim = grant_for(web, "pedroaviary", pedro.open_ticket_ids[0])
    without = grant_for(web, "northwind", NORTHWIND.open_ticket_ids[0])
    sign_in(page, web)
    page.goto(f"/grants/{with_pim}")
    expect(page.locator("#grant-role")).to_contain_text("ends in the tenant itself (PIM)")
    page.goto(f"/grants/{without}")
    expect(page.locator("#grant-role")).to_contain_text("no Entra ID P2 licence")
