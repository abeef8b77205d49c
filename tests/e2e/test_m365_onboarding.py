"""Onboarding many tenants through the API: one MSP app (PUT /api/v1/m365-app) whose customers
give only a tenant, admin consent through Entra's adminconsent endpoint (the emulator's) and
the redirect back, and certificate credentials (the emulator's token endpoint checks the
client assertion). https://learn.microsoft.com/entra/identity-platform/v2-admin-consent,
https://learn.microsoft.com/entra/identity-platform/certificate-credentials."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from jitadmin.emulators.seed import CUSTOMERS

from support.certificates import make_certificate
from support.system import System

PEDRO, NORTHWIND = CUSTOMERS
APP = "/m365-app"


def app_body(system: System, **overrides: Any) -> dict[str, Any]:
    graph = system.world.graph_settings(NORTHWIND)
    body = {"client_id": graph["client_id"], "client_secret": graph["client_secret"],
            "authority_url": graph["authority_url"], "graph_url": graph["base_url"]}  # fmt: skip
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def graph_admin(system: System) -> httpx.Client:
    return httpx.Client(base_url=f"{system.world.url}/graph", timeout=30)


def set_up_app(system: System, **overrides: Any) -> dict[str, Any]:
    with system.client("admin") as api:
        saved = api.put(APP, json=app_body(system, **overrides))
        assert saved.status_code == 200, saved.text
        assert "client_secret" not in saved.json() and "private_key_pem" not in saved.json()
    with graph_admin(system) as graph:
        graph.put(
            "/_admin/app-registration",
            json={"redirect_uris": [f"{system.url}/admin/m365/consent"]},
        ).raise_for_status()
    body: dict[str, Any] = saved.json()
    return body


def consent(system: System, slug: str, *, accept: bool = True, pick: str = "") -> dict[str, str]:
    """Follow the consent link as the customer's admin would; the redirect's query."""
    with system.client("admin") as api:
        link = api.get(f"/customers/{slug}/connections/m365/consent-link")
        assert link.status_code == 200, link.text
    url = link.json()["url"]
    assert url.startswith(f"{system.world.url}/graph/login/")
    assert "/adminconsent?" in url
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["redirect_uri"] == f"{system.url}/admin/m365/consent"
    with httpx.Client(timeout=30) as browser:
        prompt = browser.get(url)
        assert prompt.status_code == 200 and "Permissions requested" in prompt.text
        form = {**query, "decision": "accept" if accept else "cancel"}
        if pick:
            form["tenant"] = pick
        answer = browser.post(url.split("?")[0], data=form)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(query["redirect_uri"] + "?")
    return dict(parse_qsl(urlsplit(location).query))


def test_one_msp_app_and_consent_connect_a_customer_by_tenant_alone(system: System) -> None:
    set_up_app(system)
    with system.client("admin") as api:
        saved = api.put("/customers/northwind/connections/m365",
                        json={"tenant_id": NORTHWIND.domain})  # fmt: skip
        assert saved.status_code == 200, saved.text
    with graph_admin(system) as graph:
        graph.put(f"/_admin/tenants/{NORTHWIND.tenant_id}/consent", json={"consented": False})
    with system.client("admin") as api:
        before = api.post("/customers/northwind/connections/m365/test")
        assert before.status_code == 503  # not consented in that tenant yet
    back = consent(system, "northwind")
    assert back["admin_consent"] == "True" and back["tenant"] == NORTHWIND.tenant_id
    with system.client("admin") as api:
        done = api.post(f"{APP}/consent", json=back)
        assert done.status_code == 200, done.text
        outcome = done.json()
        assert outcome["ok"] is True, outcome
        assert outcome["customer"] == "northwind"
        assert "token acquired" in outcome["findings"]
        kinds = [e["kind"] for e in api.get("/audit").json()["items"]]
        assert "connection.consented" in kinds and "app.saved" in kinds
    # A grant through the shared app, end to end.
    with system.client() as api:
        created = api.post("/grants", json={
            "customer": "northwind", "identity_provider": "m365",
            "ticket_id": NORTHWIND.open_ticket_ids[0], "duration_minutes": 30,
            "reason": "Onboarded through admin consent",
        })  # fmt: skip
        assert created.status_code == 202, created.text
        grant_id = created.json()["id"]
        system.wait_state(grant_id, "active")
        assert system.world.graph.find_user(NORTHWIND.tenant_id, created.json()["username"])
        assert api.post(f"/grants/{grant_id}/revoke").status_code == 202
    system.wait_state(grant_id, "revoked")


def test_a_declined_consent_is_shown_plainly_and_changes_nothing(system: System) -> None:
    set_up_app(system)
    with system.client("admin") as api:
        api.put("/customers/northwind/connections/m365", json={"tenant_id": NORTHWIND.tenant_id})
    back = consent(system, "northwind", accept=False)
    assert back["error"] == "access_denied"
    with system.client("admin") as api:
        outcome = api.post(f"{APP}/consent", json=back).json()
        assert outcome["ok"] is False
        assert "access_denied" in outcome["error"] and "AADSTS65004" in outcome["error"]
        kinds = [e["kind"] for e in api.get("/audit").json()["items"]]
        assert "connection.consent_refused" in kinds


def test_consent_for_a_customer_without_a_tenant_saves_the_one_consented(system: System) -> None:
    set_up_app(system)
    with system.client("admin") as api:
        made = api.post("/customers", json={"slug": "acme", "name": "Acme", "psa_company_id": "7"})
        assert made.status_code == 201, made.text
        link = api.get("/customers/acme/connections/m365/consent-link").json()
        assert link["tenant"] == "organizations"
    back = consent(system, "acme", pick=NORTHWIND.tenant_id)
    with system.client("admin") as api:
        outcome = api.post(f"{APP}/consent", json=back).json()
        assert outcome["ok"] is True, outcome
        customer = next(c for c in api.get("/customers").json()["items"] if c["slug"] == "acme")
        assert customer["identity_providers"] == ["m365"]


def test_a_forged_or_foreign_state_is_refused(system: System) -> None:
    set_up_app(system)
    with system.client("admin") as api:
        link = api.get("/customers/pedroaviary/connections/m365/consent-link")
        # pedroaviary's connection has its own app (the demo's): consent is the app owner's.
        assert link.status_code == 422
        forged = api.post(f"{APP}/consent", json={"state": "e30.bad", "admin_consent": "True",
                                                  "tenant": NORTHWIND.tenant_id})  # fmt: skip
        assert forged.status_code == 422
        assert forged.json()["errors"][0]["field"] == "state"
    with system.client("technician") as api:
        assert api.post(f"{APP}/consent", json={"state": "x"}).status_code == 403


def test_a_connection_without_client_id_needs_the_msp_app(system: System) -> None:
    with system.client("admin") as api:
        refused = api.put("/customers/northwind/connections/m365",
                          json={"tenant_id": NORTHWIND.tenant_id})  # fmt: skip
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "client_id"
        assert "PUT /api/v1/m365-app" in refused.json()["errors"][0]["rule"]


def test_the_msp_app_with_a_certificate_credential(system: System) -> None:
    cert = make_certificate("jitadmin MSP app")
    with graph_admin(system) as graph:
        graph.post(
            "/_admin/app-registration/certificates", json={"pem": cert.certificate_pem}
        ).raise_for_status()
    with system.client("admin") as api:
        mismatched = api.put(APP, json=app_body(
            system, client_secret=None, certificate_pem=cert.certificate_pem,
            private_key_pem=make_certificate("other").private_key_pem,
        ))  # fmt: skip
        assert mismatched.status_code == 422
        assert mismatched.json()["errors"][0]["field"] == "private_key_pem"
        assert api.get(APP).json() == {"configured": False, "settings": None}  # nothing saved
        both = api.put(APP, json=app_body(system, certificate_pem=cert.certificate_pem,
                                          private_key_pem=cert.private_key_pem))  # fmt: skip
        assert both.status_code == 422 and both.json()["errors"][0]["field"] == "client_secret"
    saved = set_up_app(system, client_secret=None, certificate_pem=cert.certificate_pem,
                       private_key_pem=cert.private_key_pem)  # fmt: skip
    assert saved["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    with system.client("admin") as api:
        api.put("/customers/northwind/connections/m365", json={"tenant_id": NORTHWIND.tenant_id})
        tested = api.post("/customers/northwind/connections/m365/test")
        assert tested.status_code == 200, tested.text
        assert cert.private_key_pem not in str(api.get("/audit").json())
    with graph_admin(system) as graph:
        forms = [e["body"] for e in graph.get("/_admin/requests").json()
                 if e["path"].endswith("/oauth2/v2.0/token") and e["body"]]  # fmt: skip
    assert any(f.get("client_assertion") == "***" and "client_secret" not in f for f in forms)


def test_a_customer_connection_of_its_own_with_a_certificate(system: System) -> None:
    cert = make_certificate("pedro's own app")
    with graph_admin(system) as graph:
        graph.post("/_admin/app-registration/certificates", json={"pem": cert.certificate_pem})
    graph_settings = system.world.graph_settings(PEDRO)
    with system.client("admin") as api:
        saved = api.put("/customers/pedroaviary/connections/m365", json={
            "tenant_id": PEDRO.tenant_id, "client_id": graph_settings["client_id"],
            "certificate_pem": cert.certificate_pem, "private_key_pem": cert.private_key_pem,
            "authority_url": graph_settings["authority_url"],
            "graph_url": graph_settings["base_url"],
        })  # fmt: skip
        assert saved.status_code == 200, saved.text
        assert "private_key_pem" not in saved.json()["settings"]
        tested = api.post("/customers/pedroaviary/connections/m365/test")
        assert tested.status_code == 200, tested.text


def test_a_consent_in_another_tenant_than_the_connections_changes_nothing(
    system: System,
) -> None:
    set_up_app(system)
    with system.client("admin") as api:
        api.put("/customers/northwind/connections/m365", json={"tenant_id": NORTHWIND.domain})
        link = api.get("/customers/northwind/connections/m365/consent-link").json()
        assert link["tenant"] == NORTHWIND.domain
        # The domain resolves to Northwind's tenant id, not to the one the answer names.
        outcome = api.post(f"{APP}/consent", json={
            "state": link["state"], "admin_consent": "True", "tenant": PEDRO.tenant_id,
        }).json()  # fmt: skip
        assert outcome["ok"] is False
        assert "nothing was changed" in outcome["error"]
        customers = api.get("/customers").json()["items"]
        assert next(c for c in customers if c["slug"] == "northwind")["identity_providers"] == [
            "m365"
        ]
        kinds = [e["kind"] for e in api.get("/audit").json()["items"]]
        assert "connection.consented" not in kinds
