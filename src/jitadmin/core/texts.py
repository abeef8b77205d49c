"""Ticket note texts (DESIGN.md §5).

The first sentence of each is a contract with the MSP's technicians: keep it word for word.
"""

from __future__ import annotations

from datetime import datetime

from jitadmin.core.clock import iso
from jitadmin.core.grant import Grant


def marker(grant_id: str, event: str) -> str:
    """The idempotency marker carried by every note, on one line."""
    return f"jitadmin:{grant_id}:{event}"


def _details(grant: Grant, *, until: datetime | None = None) -> str:
    end = until or grant.expires_at
    return (
        f"Requested by {grant.requester} for {grant.duration_minutes} minutes "
        f"(until {iso(end)}). Reason: {grant.reason}"
    )


def granted_note(grant: Grant) -> str:
    if grant.identity_provider == "ad":
        head = (
            f"The tech account {grant.username} is now enabled and has been added to "
            f"Domain Admins until {iso(grant.expires_at)}."
        )
    else:
        head = (
            f"The account {grant.username} is now enabled and has been added to the "
            "Global Admin role."
        )
    return f"{head}\n{_details(grant)}\n[{marker(grant.id, 'granted')}]"


def revoked_note(grant: Grant) -> str:
    if grant.identity_provider == "ad":
        head = (
            f"The tech account {grant.username} has been removed from Domain Admins, "
            "disabled, and its password reset."
        )
    else:
        head = (
            f"Global Admin has been removed from the account {grant.username} and the account "
            "has been deleted."
        )
    return (
        f"{head}\nRevoked at {iso(grant.revoked_at)}; requested by {grant.requester}. "
        f"Reason: {grant.reason}\n[{marker(grant.id, 'revoked')}]"
    )


def revoke_failed_note(grant: Grant) -> str:
    return (
        f"WARNING: jitadmin could not yet verify that admin access for {grant.username} was "
        f"removed. It keeps retrying until it can. Last error: {grant.last_error}\n"
        f"[{marker(grant.id, 'revoke_failed')}]"
    )


def extended_note(grant: Grant, sequence: int, minutes: int) -> str:
    return (
        f"Admin access for {grant.username} was extended by {minutes} minutes, "
        f"until {iso(grant.expires_at)}. Requested by {grant.requester}.\n"
        f"[{marker(grant.id, f'extended-{sequence}')}]"
    )


def provision_failed_note(grant: Grant) -> str:
    return (
        f"jitadmin could not grant admin access for {grant.requester}: {grant.last_error}. "
        "Anything partly created is being removed.\n"
        f"[{marker(grant.id, 'failed')}]"
    )


def tampering_note(grant: Grant, fields: str) -> str:
    return (
        f"WARNING: the account {grant.username or grant.requester} that jitadmin created for "
        f"this grant was changed on the target ({fields}), by the account itself or an "
        "administrator. jitadmin still takes its access away by the object id it recorded; "
        "please find out who changed it.\n"
        f"[{marker(grant.id, 'tampered')}]"
    )
