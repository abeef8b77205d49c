"""Ticket note texts.

The first sentence of each is a contract with the MSP's technicians (they search tickets for
it): keep it word for word. Each identity provider words its own (``AccessWording``).
"""

from __future__ import annotations

import re
from datetime import datetime

from jitadmin.core.clock import iso
from jitadmin.core.connectors import AccessWording
from jitadmin.core.grant import Grant


def marker(grant_id: str, event: str) -> str:
    """The idempotency marker carried by every note, on one line."""
    return f"jitadmin:{grant_id}:{event}"


# Line breaks and other control characters: a user's text must stay on the line it is put on,
# so it can never become a note's last line, where the marker lives.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_MARKER_PREFIX = re.compile(r"jitadmin\s*:", re.IGNORECASE)


def neutral(text: str | None) -> str:
    """User-supplied text made safe for a note: one line, carrying no marker."""
    flat = _CONTROL.sub(" ", text or "")
    return _MARKER_PREFIX.sub("jitadmin -", flat)


def carries_marker(note_text: str, marker_text: str) -> bool:
    """Whether a note is the one carrying ``marker_text``: its last line is exactly the marker.

    A marker quoted anywhere else in a note (a reason, say) never counts.
    """
    lines = [line.strip() for line in note_text.replace("\r", "\n").split("\n")]
    last = next((line for line in reversed(lines) if line), "")
    return last == f"[{marker_text}]"


def _details(grant: Grant, *, until: datetime | None = None) -> str:
    end = until or grant.expires_at
    return (
        f"Requested by {neutral(grant.requester)} for {grant.duration_minutes} minutes "
        f"(until {iso(end)}). Reason: {neutral(grant.reason)}"
    )


def granted_note(grant: Grant, wording: AccessWording) -> str:
    """The note posted when access is granted, in the words of the grant's identity provider."""
    head = wording.granted.format(
        username=neutral(grant.username), expires_at=iso(grant.expires_at)
    )
    approved = ""
    if grant.approvers:
        approved = f"\nApproved by {', '.join(neutral(a) for a in grant.approvers)}."
    return f"{head}\n{_details(grant)}{approved}\n[{marker(grant.id, 'granted')}]"


def revoked_note(grant: Grant, wording: AccessWording) -> str:
    head = wording.revoked.format(username=neutral(grant.username))
    if wording.outlived_by and wording.outlived_for and grant.revoked_at:
        head += " " + wording.outlived_by.format(until=iso(grant.revoked_at + wording.outlived_for))
    return (
        f"{head}\nRevoked at {iso(grant.revoked_at)}; requested by {neutral(grant.requester)}. "
        f"Reason: {neutral(grant.reason)}\n[{marker(grant.id, 'revoked')}]"
    )


def revoke_failed_note(grant: Grant) -> str:
    return (
        "WARNING: jitadmin could not yet verify that admin access for "
        f"{neutral(grant.username)} was "
        f"removed. It keeps retrying until it can. Last error: {neutral(grant.last_error)}\n"
        f"[{marker(grant.id, 'revoke_failed')}]"
    )


def agent_offline_note(grant: Grant) -> str:
    return (
        "WARNING: no on-prem agent of this customer is online, so jitadmin cannot reach the "
        f"domain controller for {neutral(grant.username or grant.requester)} "
        f"(grant {grant.state.value}). It goes on as soon as an agent is back; the agent "
        "itself revokes access past the grant's end if it cannot reach jitadmin.\n"
        f"[{marker(grant.id, 'agent_offline')}]"
    )


def extended_note(grant: Grant, sequence: int, minutes: int) -> str:
    return (
        f"Admin access for {neutral(grant.username)} was extended by {minutes} minutes, "
        f"until {iso(grant.expires_at)}. Requested by {neutral(grant.requester)}.\n"
        f"[{marker(grant.id, f'extended-{sequence}')}]"
    )


def provision_failed_note(grant: Grant) -> str:
    return (
        f"jitadmin could not grant admin access for {neutral(grant.requester)}: "
        f"{neutral(grant.last_error)}. "
        "Anything partly created is being removed.\n"
        f"[{marker(grant.id, 'failed')}]"
    )


def tampering_note(grant: Grant, fields: str) -> str:
    return (
        f"WARNING: the account {neutral(grant.username or grant.requester)} "
        "that jitadmin created for "
        f"this grant was changed on the target ({neutral(fields)}), by the account itself or an "
        "administrator. jitadmin still takes its access away by the object id it recorded; "
        "please find out who changed it.\n"
        f"[{marker(grant.id, 'tampered')}]"
    )


def rejected_note(grant: Grant, rejected_by: str, comment: str) -> str:
    return (
        f"The request for admin access by {neutral(grant.requester)} was rejected by "
        f"{neutral(rejected_by)}; nothing was created. Comment: {neutral(comment)}\n"
        f"Reason given: {neutral(grant.reason)}\n"
        f"[{marker(grant.id, 'rejected')}]"
    )


def approval_expired_note(grant: Grant) -> str:
    return (
        f"The request for admin access by {neutral(grant.requester)} expired "
        f"without enough approvals (needed {grant.approvals_needed}, given "
        f"{len(grant.approvals)}) at {iso(grant.approval_expires_at)}; nothing was created.\n"
        f"[{marker(grant.id, 'approval_expired')}]"
    )
