"""The user lifecycle through the REST API, the web console and the CLI, on a running system
(API + worker + emulators), SQLite and PostgreSQL: show, change, disable (sessions and tokens
stop on the very next request; grants revoked through the worker with their ticket notes),
password reset, end sessions; every change in the audit trail."""

from __future__ import annotations

import re
from typing import Any

import httpx

from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.ports import AuditQuery

from support.insiders import A, Insider, add_admin, sign_in, stored_state
from support.system import System
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


def _technician(system: System, name: str = "leaver@msp.example") -> Insider:
    with system.client("admin") as api:
        made = api.post("/users", json={"username": name, "role": "technician"})
    assert made.status_code == 201, made.text
    return Insider(name, made.json()["password"], made.json()["token"])


def _audit_kinds(system: System) -> list[str]:
    with system.app.ctx.uow() as uow:
        return [e.kind for e in uow.audit.search(AuditQuery(), 100_000)]


def _web_signin(system: System, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=system.url, timeout=30, follow_redirects=False) as client:
        form = client.get("/signin").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        data = {"csrf_token": token.group(1), "username": username, "password": password}
        return client.post("/signin", data=data)


def test_disabling_stops_the_open_session_and_the_token_on_their_next_request(
    system: System,
) -> None:
    leaver = _technician(system)
    web = sign_in(system, leaver)
    with leaver.api(system) as api, web.client(system) as browser:
        assert api.get("/grants").status_code == 200
        assert browser.get("/grants").status_code == 200
        with system.client("admin") as root:
            shown = root.get(f"/users/{leaver.username}").json()
            assert (shown["disabled"], shown["sessions"], shown["tokens"]) == (False, 1, 1)
            done = root.patch(f"/users/{leaver.username}", json={"disabled": True})
        assert done.status_code == 200, done.text
        assert done.json()["disabled"] is True and done.json()["sessions_ended"] == 1
        # The very next request of each credential is refused.
        refused = api.get("/grants")
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        page = browser.get("/grants")
        assert page.status_code == 303 and page.headers["location"].startswith("/signin")
    signin = _web_signin(system, leaver.username, leaver.password)
    assert signin.status_code == 401 and "This account is disabled" in signin.text
    wrong = _web_signin(system, leaver.username, "not-the-password")
    assert wrong.status_code == 401 and "Unknown username or wrong password" in wrong.text
    assert "user.disabled" in _audit_kinds(system)
    with system.client("admin") as root:
        listed = {u["username"]: u["disabled"] for u in root.get("/users").json()["items"]}
        assert listed[leaver.username] is True
        assert root.patch(f"/users/{leaver.username}", json={"disabled": False}).status_code == 200
    with leaver.api(system) as api:
        assert api.get("/grants").status_code == 200  # enabled: the same token works again


def test_disabling_with_revoke_grants_revokes_them_through_the_worker(system: System) -> None:
    leaver = _technician(system)
    body = {
        "customer": PEDRO.slug, "identity_provider": "m365", "ticket_id": PEDRO.open_ticket_ids[0],
        "duration_minutes": 30, "reason": "patch the mail flow rules",
    }  # fmt: skip
    with leaver.api(system) as api:
        made = api.post("/grants", json=body)
    assert made.status_code == 202, made.text
    grant_id = made.json()["id"]
    system.wait_state(grant_id, "active")
    with system.client("admin") as root:
        done = root.patch(
            f"/users/{leaver.username}", json={"disabled": True, "revoke_grants": True}
        )
    assert done.status_code == 200, done.text
    assert done.json()["revoked_grants"] == [grant_id] and done.json()["not_revoked"] == []
    revoked = system.wait_state(grant_id, "revoked")
    assert revoked["revoked_at"] is not None
    wait_for(
        lambda: any(f"jitadmin:{grant_id}:revoked" in n for n in system.ticket_notes(
            str(PEDRO.open_ticket_ids[0]))) or None,
        timeout=30, what="the revocation note",
    )  # fmt: skip


def test_patch_changes_role_and_customers_and_names_bad_fields(system: System) -> None:
    leaver = _technician(system)
    path = f"/users/{leaver.username}"
    with system.client("admin") as root:
        before = stored_state(system)
        for body, field in (
            ({"role": "overlord"}, "role"),
            ({"customers": ["no-such-customer"]}, "customers"),
            ({"disabled": "perhaps"}, "disabled"),
            ({"nickname": "x"}, "nickname"),
            ({}, "role"),
        ):
            refused = root.patch(path, json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert [e["field"] for e in refused.json()["errors"]] == [field], refused.text
        assert stored_state(system) == before
        changed = root.patch(path, json={"role": "approver", "customers": [A]})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["role"], changed.json()["customers"]) == ("approver", [A])
        widened = root.patch(path, json={"customers": None})
        assert widened.json()["customers"] is None
        assert root.get("/users/nobody@msp.example").status_code == 404
    assert _audit_kinds(system).count("user.updated") == 2


def test_password_reset_and_end_sessions(system: System) -> None:
    leaver = _technician(system)
    web = sign_in(system, leaver)
    with system.client("admin") as root:
        reset = root.post(f"/users/{leaver.username}/password-reset")
        assert reset.status_code == 200, reset.text
        new_password = reset.json()["password"]
        assert new_password != leaver.password and reset.json()["sessions_ended"] == 1
    with web.client(system) as browser:
        assert browser.get("/grants").status_code == 303  # the reset ended the session
    assert _web_signin(system, leaver.username, leaver.password).status_code == 401
    assert _web_signin(system, leaver.username, new_password).status_code == 303
    again = sign_in(system, Insider(leaver.username, new_password, leaver.token))
    with system.client("admin") as root:
        ended = root.delete(f"/users/{leaver.username}/sessions")
    assert ended.status_code == 200 and ended.json()["sessions_ended"] == 2
    with again.client(system) as browser:
        assert browser.get("/grants").status_code == 303
    kinds = _audit_kinds(system)
    assert "user.password_reset" in kinds and "user.sessions_ended" in kinds
    with system.app.ctx.uow() as uow:
        trail = str([e.data for e in uow.audit.search(AuditQuery(), 100_000)])
    assert new_password not in trail


def test_a_restricted_admin_cannot_reach_users_outside_its_scope(system: System) -> None:
    leaver = _technician(system)  # unrestricted: outside admin.a's scope
    admin_a = add_admin(system, "admin.a@msp.example", [A])
    before = stored_state(system)
    with admin_a.api(system) as api:
        path = f"/users/{leaver.username}"
        answers = [
            api.get(path).status_code,
            api.patch(path, json={"disabled": True}).status_code,
            api.post(f"{path}/password-reset").status_code,
            api.delete(f"{path}/sessions").status_code,
        ]
    assert answers == [404, 404, 404, 404]
    assert stored_state(system) == before


def test_the_console_disables_resets_and_enables(system: System) -> None:
    leaver = _technician(system)
    root = Insider("admin", system.users["admin"]["password"], system.users["admin"]["token"])
    web = sign_in(system, root)
    victim = sign_in(system, leaver)
    base = f"/admin/users/{leaver.username}"
    with web.client(system) as browser:
        listing = browser.get("/admin/users")
        assert f'href="/admin/users/{leaver.username.replace("@", "%40")}"' in listing.text
        disabled = browser.post(f"{base}/disable", data=web.form(revoke_grants="yes"))
        assert disabled.status_code == 200, disabled.text
        assert "is disabled; 1 web session(s) ended" in disabled.text
        reset = browser.post(f"{base}/password-reset", data=web.form())
        found = re.search(r'id="new-password" class="secret">([^<]+)<', reset.text)
        assert found is not None
        enabled = browser.post(f"{base}/enable", data=web.form())
        assert "is enabled again" in enabled.text
        changed = browser.post(base, data=web.form(role="auditor"))
        assert changed.status_code == 200 and "Role and customers saved" in changed.text
        bad = browser.post(base, data=web.form(role="overlord"))
        assert bad.status_code == 422 and "must be one of" in bad.text
    with victim.client(system) as browser:
        assert browser.get("/grants").status_code == 303
    assert _web_signin(system, leaver.username, found.group(1)).status_code == 303
    shown: dict[str, Any] = {}
    with system.client("admin") as api:
        shown = api.get(f"/users/{leaver.username}").json()
    assert (shown["role"], shown["disabled"]) == ("auditor", False)
