"""Notifications: which events exist, what a delivery says, and how each channel kind wants it.

Pure: the bodies and headers are built here, sent by an adapter. A grant's view never holds
its password (the core ``Grant`` does not carry it) nor its worker bookkeeping.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from jitadmin.core.clock import iso
from jitadmin.core.grant import Grant

EVENTS = (
    "grant.approval_requested",
    "grant.approved",
    "grant.rejected",
    "grant.active",
    "grant.revoked",
    "grant.revoke_failed",
    "drift.detected",
    "agent.offline",
    "grant.password_revealed",
)
TEST_EVENT = "channel.test"
KINDS = ("webhook", "slack", "teams", "email")
URL_KINDS = ("webhook", "slack", "teams")
# Consecutive failed deliveries after which a channel is shown as failing.
FAILING_AFTER = 3

_TITLES = {
    "grant.approval_requested": "Approval requested",
    "grant.approved": "Request approved",
    "grant.rejected": "Request rejected",
    "grant.active": "Admin access granted",
    "grant.revoked": "Admin access revoked",
    "grant.revoke_failed": "REVOCATION FAILING",
    "drift.detected": "Drift detected",
    "agent.offline": "NO ON-PREM AGENT ONLINE",
    "grant.password_revealed": "Temporary password revealed",
    TEST_EVENT: "Test notification",
}


def grant_view(grant: Grant) -> dict[str, Any]:
    """What a notification says about a grant: never a password."""
    return {
        "id": grant.id,
        "state": grant.state.value,
        "customer": grant.customer,
        "identity_provider": grant.identity_provider,
        "ticket_id": grant.ticket_id,
        "requester": grant.requester,
        "reason": grant.reason,
        "username": grant.username,
        "duration_minutes": grant.duration_minutes,
        "created_at": iso(grant.created_at),
        "activated_at": iso(grant.activated_at),
        "expires_at": iso(grant.expires_at),
        "revoked_at": iso(grant.revoked_at),
        "approvals": [{"by": a["by"], "at": a["at"]} for a in grant.approvals],
    }


def grant_link(public_url: str, grant_id: str) -> str:
    return f"{public_url.rstrip('/')}/grants/{grant_id}"


def payload(
    event: str, at: datetime, grant: Grant | None, url: str, **details: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"event": event, "at": iso(at), "grant": None, "url": url}
    if grant is not None:
        body["grant"] = grant_view(grant)
    if details:
        body["details"] = details
    return body


def signature(secret: str, body: bytes) -> str:
    """``X-Jitadmin-Signature``: HMAC-SHA256 of the raw body under the channel's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def summary(body: dict[str, Any]) -> str:
    """One line for people: what happened, to whom, where."""
    title = _TITLES.get(str(body.get("event")), str(body.get("event")))
    grant = body.get("grant")
    if not grant:
        return f"jitadmin: {title}"
    who = f"{grant['requester']} at {grant['customer']} ({grant['identity_provider']})"
    return f"jitadmin: {title}: {who}, ticket {grant['ticket_id']}, grant {grant['id']}"


def render(
    kind: str, body: dict[str, Any], delivery_id: str, secret: str | None
) -> tuple[bytes, dict[str, str]]:
    """The bytes and headers of one delivery to a channel of ``kind``."""
    headers = {
        "Content-Type": "application/json",
        "X-Jitadmin-Event": str(body["event"]),
        "X-Jitadmin-Delivery": delivery_id,
    }
    if kind == "slack":
        message: dict[str, Any] = {"text": _slack_text(body)}
    elif kind == "teams":
        message = _teams_card(body)
    else:
        message = body
    raw = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
    if kind == "webhook" and secret:
        headers["X-Jitadmin-Signature"] = signature(secret, raw)
    return raw, headers


def _slack_text(body: dict[str, Any]) -> str:
    # Slack's mrkdwn link syntax <url|label>; &, < and > must be escaped in the text
    # (https://api.slack.com/reference/surfaces/formatting#escaping).
    text = summary(body).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    url = str(body.get("url") or "")
    return f"{text} <{url}|Open in jitadmin>" if url else text


def _teams_card(body: dict[str, Any]) -> dict[str, Any]:
    """A MessageCard, the format Teams incoming webhooks take
    (https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using)."""
    grant = body.get("grant") or {}
    facts = [
        {"name": name, "value": str(grant[key])}
        for name, key in (
            ("Customer", "customer"),
            ("Requester", "requester"),
            ("Identity provider", "identity_provider"),
            ("Ticket", "ticket_id"),
            ("Reason", "reason"),
            ("Expires", "expires_at"),
        )
        if grant.get(key)
    ]
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": summary(body),
        "themeColor": "D70000" if body.get("event") == "grant.revoke_failed" else "0076D7",
        "title": summary(body),
        "sections": [{"facts": facts}] if facts else [],
    }
    if body.get("url"):
        card["potentialAction"] = [
            {
                "@type": "OpenUri",
                "name": "Open in jitadmin",
                "targets": [{"os": "default", "uri": str(body["url"])}],
            }
        ]
    return card
