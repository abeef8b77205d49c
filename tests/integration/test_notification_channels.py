"""Notification channels through the API: created (URL and secret write-only, sealed, egress
checked), listed with their health, tested against a real HTTP receiver, deleted; audited."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from jitadmin.db.tables import NotificationChannelRow
from jitadmin.ports import WebSession
from jitadmin.services.sessions import session_hash

from support.receiver import Receiver, receiver
from support.system import System

SECRET = "a-webhook-signing-secret-0123456789"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def _channels(system: System) -> list[str]:
    """Each stored channel's sealed column, as the database holds it."""
    with system.app.database.engine.connect() as connection:
        return list(connection.scalars(select(NotificationChannelRow.sealed)))


def test_a_webhook_channel_is_created_listed_tested_and_deleted(
    system: System, hook: Receiver
) -> None:
    body = {"kind": "webhook", "url": hook.url, "secret": SECRET,
            "events": ["grant.active", "grant.revoked"], "customers": ["pedroaviary"]}  # fmt: skip
    with system.client("admin") as api:
        created = api.post("/notification-channels", json=body)
        assert created.status_code == 201, created.text
        channel = created.json()
        assert channel["kind"] == "webhook" and channel["host"] == "127.0.0.1"
        assert channel["events"] == ["grant.active", "grant.revoked"]
        assert channel["customers"] == ["pedroaviary"]
        assert SECRET not in created.text and hook.url not in created.text

        listed = api.get("/notification-channels")
        assert listed.status_code == 200
        (item,) = listed.json()["items"]
        assert item["id"] == channel["id"] and item["failing"] is False and item["backlog"] == 0
        assert SECRET not in listed.text and hook.url not in listed.text

        tested = api.post(f"/notification-channels/{channel['id']}/test")
        assert tested.status_code == 200, tested.text
        assert tested.json() == {"ok": True, "message": "delivered"}
        (got,) = hook.delivered()
        assert got.headers["x-jitadmin-event"] == "channel.test"
        assert got.signed_by(SECRET) and not got.signed_by("another secret, not the channel's")
        assert got.json()["event"] == "channel.test"

        deleted = api.delete(f"/notification-channels/{channel['id']}")
        assert deleted.status_code == 200
        assert deleted.json() == {"id": channel["id"], "deleted": True}
        assert api.get("/notification-channels").json()["items"] == []
        assert api.delete(f"/notification-channels/{channel['id']}").status_code == 404
        assert api.post(f"/notification-channels/{channel['id']}/test").status_code == 404
        audit = api.get("/audit", params={"limit": 50}).json()["items"]
    kinds = [e["kind"] for e in audit]
    for kind in ("created", "tested", "deleted"):
        assert f"notification_channel.{kind}" in kinds
    assert SECRET not in str(audit) and hook.url not in str(audit)
    assert _channels(system) == []


def test_the_url_and_secret_are_sealed_at_rest(system: System, hook: Receiver) -> None:
    with system.client("admin") as api:
        made = api.post(
            "/notification-channels",
            json={"kind": "slack", "url": hook.url + "/T000/B000/XXXX", "events": ["grant.active"]},
        )
        assert made.status_code == 201, made.text
    (sealed,) = _channels(system)
    assert "XXXX" not in sealed and "127.0.0.1" not in sealed


def test_a_failed_test_says_why_in_fixed_words(system: System, hook: Receiver) -> None:
    hook.failures = [500]
    with system.client("admin") as api:
        made = api.post(
            "/notification-channels",
            json={"kind": "teams", "url": hook.url, "events": ["grant.revoke_failed"]},
        ).json()
        tested = api.post(f"/notification-channels/{made['id']}/test").json()
        assert tested == {"ok": False, "message": "could not reach the server"}
        (item,) = api.get("/notification-channels").json()["items"]
    assert item["consecutive_failures"] == 1 and item["last_error"] == "could not reach the server"
    card = hook.requests[0].json()
    assert card["@type"] == "MessageCard" and "Test notification" in card["summary"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "pager", "events": ["grant.active"]}, "kind"),
        ({"kind": "webhook", "secret": SECRET, "events": ["grant.active"]}, "url"),
        ({"kind": "webhook", "url": "https://hooks.example/x", "events": ["grant.active"]},
         "secret"),
        ({"kind": "slack", "url": "http://hooks.example/x", "events": ["grant.active"]}, "url"),
        ({"kind": "slack", "url": "https://169.254.169.254/x", "events": ["grant.active"]}, "url"),
        ({"kind": "slack", "url": "https://10.1.2.3/x", "events": ["grant.active"]}, "url"),
        ({"kind": "slack", "url": "https://hooks.example/x", "events": ["grant.exploded"]},
         "events"),
        ({"kind": "slack", "url": "https://hooks.example/x", "events": []}, "events"),
        ({"kind": "slack", "url": "https://hooks.example/x", "events": ["grant.active"],
          "customers": ["nobody"]}, "customers"),
        ({"kind": "email", "to": ["not an address"], "events": ["grant.active"]}, "to"),
        ({"kind": "email", "events": ["grant.active"]}, "to"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field_and_writes_nothing(
    system: System, body: dict[str, object], field: str
) -> None:
    with system.client("admin") as api:
        refused = api.post("/notification-channels", json=body)
    assert refused.status_code == 422, refused.text
    assert field in [e["field"] for e in refused.json()["errors"]]
    assert _channels(system) == []


def _admin_browser(system: System) -> httpx.Client:
    """The console as a signed-in admin: a web session put straight into the store."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = system.app.ctx.clock.now()
    with system.app.ctx.uow() as uow:
        uow.web_sessions.add(
            WebSession(
                session_hash(system.app.ctx, session_id), system.users["admin"]["username"],
                csrf, now, now, now + timedelta(hours=1),
            )
        )  # fmt: skip
        uow.commit()
    client = httpx.Client(base_url=system.url, timeout=30, headers={"X-CSRF-Token": csrf})
    client.cookies.set("jitadmin_session", session_id)
    client.headers["X-Test-CSRF"] = csrf
    return client


def test_the_console_page_creates_tests_and_deletes_a_channel(
    system: System, hook: Receiver
) -> None:
    with _admin_browser(system) as browser:
        csrf = browser.headers["X-Test-CSRF"]
        refused = browser.post("/admin/notifications", data={"csrf_token": csrf, "kind": "slack"})
        assert refused.status_code == 422
        assert "must name at least one of" in refused.text and _channels(system) == []
        made = browser.post(
            "/admin/notifications",
            data={"csrf_token": csrf, "kind": "webhook", "url": hook.url, "secret": SECRET,
                  "events": ["grant.active", "grant.revoked"], "customers": ""},
        )  # fmt: skip
        assert made.status_code == 200, made.text
        assert "created" in made.text and hook.url not in made.text and SECRET not in made.text
        with system.client("admin") as api:
            (item,) = api.get("/notification-channels").json()["items"]
        assert item["events"] == ["grant.active", "grant.revoked"] and item["customers"] is None
        tested = browser.post(f"/admin/notifications/{item['id']}/test", data={"csrf_token": csrf})
        assert "Test notification delivered." in tested.text
        assert hook.delivered()[0].signed_by(SECRET)
        gone = browser.post(f"/admin/notifications/{item['id']}/delete", data={"csrf_token": csrf})
        assert gone.status_code == 200 and "No channel yet." in gone.text
    assert _channels(system) == []
