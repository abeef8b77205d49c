"""What each channel kind receives: the webhook's signed JSON, Slack's text, Teams' card."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from jitadmin.core import notifications as n
from jitadmin.core.grant import Grant

AT = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


def _grant() -> Grant:
    return Grant(
        id="g-1", customer="pedroaviary", identity_provider="m365", ticket_id="1001",
        requester="tech<&>@msp.example", reason="fix <mail> & dns", duration_minutes=30,
        created_at=AT, expires_at=AT + timedelta(minutes=30),
    )  # fmt: skip


def test_a_webhook_body_is_the_payload_signed_with_hmac_sha256() -> None:
    body = n.payload("grant.active", AT, _grant(), n.grant_link("https://jit.example/", "g-1"))
    raw, headers = n.render("webhook", body, "d-1", "s3cret")
    assert json.loads(raw) == body
    assert body["url"] == "https://jit.example/grants/g-1"
    assert headers["X-Jitadmin-Event"] == "grant.active"
    assert headers["X-Jitadmin-Delivery"] == "d-1"
    expected = hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert headers["X-Jitadmin-Signature"] == f"sha256={expected}"
    assert "password" not in body["grant"]


def test_the_same_delivery_renders_the_same_bytes_on_every_retry() -> None:
    body = n.payload("grant.revoked", AT, _grant(), "/grants/g-1")
    assert n.render("webhook", body, "d-1", "k") == n.render("webhook", body, "d-1", "k")


def test_slack_gets_escaped_text_with_a_link() -> None:
    body = n.payload("grant.revoke_failed", AT, _grant(), "https://jit.example/grants/g-1")
    raw, headers = n.render("slack", body, "d-2", None)
    text = json.loads(raw)["text"]
    assert "REVOCATION FAILING" in text and "tech&lt;&amp;&gt;@msp.example" in text
    assert text.endswith("<https://jit.example/grants/g-1|Open in jitadmin>")
    assert "X-Jitadmin-Signature" not in headers


def test_teams_gets_a_message_card_with_facts_and_an_open_link() -> None:
    body = n.payload("grant.approval_requested", AT, _grant(), "https://jit.example/grants/g-1")
    card = json.loads(n.render("teams", body, "d-3", None)[0])
    assert card["@type"] == "MessageCard" and card["@context"] == "https://schema.org/extensions"
    facts = {f["name"]: f["value"] for f in card["sections"][0]["facts"]}
    assert facts["Customer"] == "pedroaviary" and facts["Ticket"] == "1001"
    (action,) = card["potentialAction"]
    assert action["targets"][0]["uri"] == "https://jit.example/grants/g-1"
