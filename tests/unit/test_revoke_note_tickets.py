"""The revoke note says until when tickets issued before the revocation may stay valid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jitadmin.adapters.ad.connector import SPEC as AD
from jitadmin.adapters.m365.connector import SPEC as M365
from jitadmin.core.grant import Grant, GrantState
from jitadmin.core.texts import revoked_note

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def revoked_grant(provider: str) -> Grant:
    grant = Grant(
        id="g-1", customer="pedroaviary", identity_provider=provider, ticket_id="48211",
        requester="tech@msp.example", reason="patching the DCs", duration_minutes=30,
        created_at=NOW, expires_at=NOW + timedelta(minutes=30), state=GrantState.REVOKED,
    )  # fmt: skip
    grant.username = "pedroaviary.tech"
    grant.revoked_at = NOW + timedelta(minutes=30)
    return grant


def test_the_ad_revoke_note_names_the_end_of_the_ticket_lifetime() -> None:
    assert AD.wording is not None
    note = revoked_note(revoked_grant("ad"), AD.wording)
    head = note.splitlines()[0]
    assert head.startswith("The tech account pedroaviary.tech has been removed from Domain Admins")
    # Revoked at 10:30; the default Kerberos policy lets a ticket live 10 hours.
    assert "Kerberos tickets issued before this may keep Domain Admins until 2026-11-26T20:30" in (
        head
    )
    assert "signed-in sessions keep it until they sign out" in head


def test_a_revoke_note_without_tickets_says_nothing_of_them() -> None:
    assert M365.wording is not None
    assert "Kerberos" not in revoked_note(revoked_grant("m365"), M365.wording)
