"""Notifications delivered to a real HTTP receiver on loopback by the running worker: each
event exactly once (dedup by X-Jitadmin-Delivery), signed, retried through an outage of the
receiver, and never in the way of a revocation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from jitadmin.core.notifications import EVENTS
from jitadmin.emulators.seed import CUSTOMERS

from support.faults import graph_admin, set_faults
from support.receiver import Receiver, receiver
from support.system import System
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]
SECRET = "the-receiver-knows-this-secret-42"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def channel(system: System, hook: Receiver, events: tuple[str, ...] = EVENTS) -> str:
    with system.client("admin") as api:
        made = api.post(
            "/notification-channels",
            json={"kind": "webhook", "url": hook.url, "secret": SECRET, "events": list(events)},
        )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def request(system: System, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": "pedroaviary", "identity_provider": "m365",
        "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
        "reason": "Notification drill",
    }  # fmt: skip
    body.update(changes)
    with system.client() as api:
        made = api.post("/grants", json=body)
    assert made.status_code == 202, made.text
    granted: dict[str, Any] = made.json()
    return granted


def revoke(system: System, grant_id: str) -> None:
    with system.client() as api:
        assert api.post(f"/grants/{grant_id}/revoke").status_code in (200, 202)


def events_of(hook: Receiver, grant_id: str) -> Counter[str]:
    """Accepted events about one grant, counted once per delivery id (as a receiver dedups)."""
    return Counter(
        r.headers["x-jitadmin-event"]
        for r in hook.accepted_once().values()
        if (r.json().get("grant") or {}).get("id") == grant_id
    )


def channel_view(system: System, channel_id: str) -> dict[str, Any]:
    with system.client("admin") as api:
        items = api.get("/notification-channels").json()["items"]
    found: dict[str, Any] = next(c for c in items if c["id"] == channel_id)
    return found


def test_each_event_arrives_once_signed_and_without_the_password(
    system: System, hook: Receiver
) -> None:
    channel(system, hook)
    grant = request(system)
    system.wait_state(grant["id"], "active")
    revoke(system, grant["id"])
    system.wait_state(grant["id"], "revoked")
    wait_for(lambda: events_of(hook, grant["id"])["grant.revoked"], what="grant.revoked")
    assert events_of(hook, grant["id"]) == Counter({"grant.active": 1, "grant.revoked": 1})
    assert len(hook.delivered()) == 2  # no retries of what was accepted
    for got in hook.delivered():
        assert got.signed_by(SECRET)
        assert got.headers["content-type"] == "application/json"
        body = got.json()
        assert body["event"] == got.headers["x-jitadmin-event"]
        assert body["url"].endswith(f"/grants/{grant['id']}")
        assert body["grant"]["customer"] == "pedroaviary" and body["at"]
        assert grant["password"] not in got.body.decode()
        assert "password" not in body["grant"]


def test_a_receiver_outage_is_retried_with_the_same_delivery_id(
    system: System, hook: Receiver
) -> None:
    hook.failures = [503, 503, 500]
    channel(system, hook, ("grant.active",))
    grant = request(system)
    system.wait_state(grant["id"], "active")
    wait_for(lambda: events_of(hook, grant["id"])["grant.active"], what="the delivery after 503s")
    statuses = [r.status for r in hook.requests]
    assert statuses == [503, 503, 500, 200]
    assert len({r.headers["x-jitadmin-delivery"] for r in hook.requests}) == 1
    assert all(r.body == hook.requests[0].body for r in hook.requests)
    assert events_of(hook, grant["id"]) == Counter({"grant.active": 1})


def test_a_revocation_completes_while_the_channel_is_down(system: System, hook: Receiver) -> None:
    channel_id = channel(system, hook, ("grant.active", "grant.revoked"))
    hook.down = True
    grant = request(system)
    system.wait_state(grant["id"], "active")
    revoke(system, grant["id"])
    system.wait_state(grant["id"], "revoked")  # while every delivery still gets a 503
    assert hook.delivered() == []
    view = wait_for(
        lambda: v if (v := channel_view(system, channel_id))["failing"] else None,
        what="the channel shown as failing",
    )
    assert view["backlog"] == 2 and "503" in view["last_error"]
    metrics = system.metrics()
    assert (
        f'jitadmin_notification_channel_failing{{channel="{channel_id}",kind="webhook"}} 1.0'
        in metrics
    )
    assert f'jitadmin_notification_backlog{{channel="{channel_id}",kind="webhook"}} 2.0' in metrics

    hook.down = False
    wait_for(lambda: events_of(hook, grant["id"])["grant.revoked"], what="the backlog delivered")
    wait_for(lambda: channel_view(system, channel_id)["backlog"] == 0, what="backlog drained")
    assert events_of(hook, grant["id"]) == Counter({"grant.active": 1, "grant.revoked": 1})
    assert channel_view(system, channel_id)["failing"] is False


def test_approval_events_and_customer_filter(system: System, hook: Receiver) -> None:
    with system.client("admin") as api:
        made = api.post(
            "/notification-channels",
            json={"kind": "webhook", "url": hook.url, "secret": SECRET, "events": list(EVENTS),
                  "customers": ["northwind"]},
        )  # fmt: skip
        assert made.status_code == 201
        policy = api.put("/customers/pedroaviary/policy", json={"approval_required": ["m365"]})
        assert policy.status_code == 200, policy.text
    pedro_channel = channel(system, hook, ("grant.approval_requested", "grant.rejected"))
    assert pedro_channel
    grant = request(system)
    assert grant["state"] == "pending_approval"
    wait_for(lambda: events_of(hook, grant["id"])["grant.approval_requested"], what="requested")
    with system.client("admin") as api:
        rejected = api.post(f"/grants/{grant['id']}/reject", json={"comment": "not today"})
        assert rejected.status_code == 200, rejected.text
    wait_for(lambda: events_of(hook, grant["id"])["grant.rejected"], what="rejected")
    # The northwind-only channel heard nothing about a pedroaviary grant: one of each.
    assert events_of(hook, grant["id"]) == Counter(
        {"grant.approval_requested": 1, "grant.rejected": 1}
    )


def test_a_failing_revocation_notifies_revoke_failed_on_every_channel_that_asked(
    system: System, hook: Receiver
) -> None:
    with receiver() as slack:
        channel(system, hook, ("grant.revoke_failed",))
        with system.client("admin") as api:
            made = api.post(
                "/notification-channels",
                json={"kind": "slack", "url": slack.url, "events": ["grant.revoke_failed"]},
            )
            assert made.status_code == 201, made.text
        grant = request(system)
        system.wait_state(grant["id"], "active")
        set_faults(graph_admin(system), outage=True)
        try:
            revoke(system, grant["id"])
            system.wait_state(grant["id"], "revoke_failed")
            wait_for(lambda: events_of(hook, grant["id"])["grant.revoke_failed"], what="webhook")
            wait_for(slack.accepted_once, what="the Slack alarm")
        finally:
            set_faults(graph_admin(system))
        system.wait_state(grant["id"], "revoked")
        assert events_of(hook, grant["id"]) == Counter({"grant.revoke_failed": 1})
        (alarm,) = slack.accepted_once().values()
        assert alarm.headers["x-jitadmin-event"] == "grant.revoke_failed"
        assert "REVOCATION FAILING" in alarm.json()["text"] and grant["id"] in alarm.json()["text"]


def test_a_password_reveal_is_notified(system: System, hook: Receiver) -> None:
    channel(system, hook, ("grant.password_revealed",))
    grant = request(system)
    system.wait_state(grant["id"], "active")
    with system.client("admin") as api:
        shown = api.post(f"/grants/{grant['id']}/password", json={"reason": "handover"})
        assert shown.status_code == 200, shown.text
    got = wait_for(
        lambda: events_of(hook, grant["id"])["grant.password_revealed"], what="the reveal"
    )
    assert got == 1
    (delivery,) = hook.delivered()
    assert grant["password"] not in delivery.body.decode()
    assert delivery.json()["details"]["revealed_by"] == "admin"


def test_an_approval_is_notified_once_then_the_grant_goes_active(
    system: System, hook: Receiver
) -> None:
    channel(system, hook, ("grant.approval_requested", "grant.approved", "grant.active"))
    with system.client("admin") as api:
        api.put(
            "/customers/pedroaviary/policy", json={"approval_required": ["m365"]}
        ).raise_for_status()
        approver = api.post("/users", json={"username": "approver@msp.example", "role": "approver"})
        assert approver.status_code == 201, approver.text
    grant = request(system)
    headers = {"Authorization": f"Bearer {approver.json()['token']}"}
    with system.client(None) as api:
        approved = api.post(f"/grants/{grant['id']}/approve", json={}, headers=headers)
        assert approved.status_code == 200, approved.text
    system.wait_state(grant["id"], "active")
    wait_for(lambda: events_of(hook, grant["id"])["grant.active"], what="grant.active")
    assert events_of(hook, grant["id"]) == Counter(
        {"grant.approval_requested": 1, "grant.approved": 1, "grant.active": 1}
    )
    (approval,) = [r for r in hook.delivered() if r.headers["x-jitadmin-event"] == "grant.approved"]
    assert approval.json()["details"]["approved_by"] == "approver@msp.example"
