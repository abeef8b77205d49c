"""services/execution.py (the worker's step) and services/notes.py on the fakes.

Each ``run_due`` is what a worker pass does; time moves only with ``services.advance``, so a
backoff is a count of attempts at given clock times, never a measured wait.
"""

from __future__ import annotations

import pytest

from jitadmin.core import texts
from jitadmin.core.errors import AlreadyExistsError, TransientError
from jitadmin.core.grant import GrantState
from jitadmin.ports import OutboxMessage

from support.services import ServiceWorld

S = GrantState


def markers_on(services: ServiceWorld, ticket: str, grant_id: str) -> list[str]:
    """Which of the grant's events the ticket's notes carry, oldest first."""
    events = ("granted", "revoked", "failed", "revoke_failed", "extended-1")
    return [
        event
        for note in services.psa.notes(ticket)
        for event in events
        if texts.carries_marker(note, texts.marker(grant_id, event))
    ]


def test_expiry_revokes_verifies_and_notes_the_ticket(services: ServiceWorld) -> None:
    ticket = services.open_ticket()
    requested = services.request(ticket_id=ticket, minutes=60)
    services.run_due()
    username = services.grant(requested.grant.id).username
    assert username is not None
    services.advance(minutes=59)
    assert services.run_due() == 0  # not due before its end
    assert services.grant(requested.grant.id).state is S.ACTIVE

    services.advance(minutes=1)
    services.run_due()
    grant = services.grant(requested.grant.id)
    assert grant.state is S.REVOKED
    assert services.identity("m365").account_named(username) is None
    assert not services.identity("m365").can_sign_in(username, requested.password)
    kinds = services.audit_kinds(grant.id)
    assert kinds.index("account.verified_revoked") < kinds.index("grant.revoked")
    assert markers_on(services, ticket, grant.id) == ["granted", "revoked"]


def test_a_transient_failure_backs_off_and_is_retried(services: ServiceWorld) -> None:
    directory = services.identity("m365")
    directory.faults.fail_next(TransientError("Graph answered 503"), on="grant")
    requested = services.request()
    services.run_due()
    grant = services.grant(requested.grant.id)
    assert (grant.state, grant.attempts) == (S.PROVISIONING, 1)
    assert grant.last_error is not None and "Graph answered 503" in grant.last_error
    assert grant.next_attempt_at is not None and grant.next_attempt_at > services.clock.now()
    assert services.run_due() == 0  # nothing is tried again before the backoff step
    assert directory.faults.count("grant") == 1

    services.advance(seconds=1)  # beyond the test settings' cap of 0.5 s
    services.run_due()
    assert services.grant(grant.id).state is S.ACTIVE
    assert directory.faults.count("grant") == 2
    assert "grant.attempt_failed" in services.audit_kinds(grant.id)


def test_provisioning_out_of_attempts_fails_cleans_up_and_says_so(services: ServiceWorld) -> None:
    ticket = services.open_ticket()
    directory = services.identity("m365")
    directory.faults.fail_next(TransientError("still down"), on="grant", times=None)
    requested = services.request(ticket_id=ticket)
    for _ in range(3):  # provision_max_attempts in the test settings
        services.run_due()
        services.advance(seconds=1)
    services.run_due()
    grant = services.grant(requested.grant.id)
    assert grant.state is S.REVOKED  # failed, then the half-made account's verified cleanup
    assert directory.faults.count("grant") == 3
    assert markers_on(services, ticket, grant.id) == ["failed", "revoked"]


def test_a_permanent_failure_is_not_retried(services: ServiceWorld) -> None:
    directory = services.identity("m365")
    directory.faults.fail_next(AlreadyExistsError("the name is taken"), on="grant")
    requested = services.request()
    services.run_due()
    assert directory.faults.count("grant") == 1
    kinds = services.audit_kinds(requested.grant.id)
    assert "grant.failed" in kinds


def test_a_revocation_not_yet_verified_is_retried_until_it_is(services: ServiceWorld) -> None:
    requested = services.request(kind="ad", minutes=30)
    services.run_due()
    directory = services.identity("ad")
    directory.lag_role_removals(1)
    services.advance(minutes=30)
    services.run_due()
    grant = services.grant(requested.grant.id)
    assert (grant.state, grant.attempts) == (S.REVOKING, 1)
    assert grant.last_error is not None and "not verified" in grant.last_error

    services.advance(seconds=1)
    services.run_due()
    grant = services.grant(requested.grant.id)
    assert grant.state is S.REVOKED
    assert grant.username is not None
    account = directory.account_named(grant.username)
    assert account is not None and not directory.holds_admin(account.object_id)
    assert not account.enabled  # AD keeps the tech account, disabled


def test_a_note_whose_answer_was_lost_is_posted_once(services: ServiceWorld) -> None:
    ticket = services.open_ticket()
    services.psa.faults.fail_next(TransientError("timed out"), on="add_note", after_effect=True)
    requested = services.request(ticket_id=ticket)
    services.run_due()
    (message,) = _outbox(services, requested.grant.id)
    assert message.state != "sent"  # the PSA stored it; we could not know
    services.advance(minutes=1)
    services.run_due()
    (message,) = _outbox(services, requested.grant.id)
    assert message.state == "sent"
    assert markers_on(services, ticket, requested.grant.id) == ["granted"]
    assert services.psa.faults.count("add_note") == 1


def test_the_next_ad_grant_reuses_the_tech_account(services: ServiceWorld) -> None:
    first = services.request(kind="ad", minutes=30)
    services.run_due()
    services.advance(minutes=30)
    services.run_due()
    assert services.grant(first.grant.id).state is S.REVOKED
    second = services.request(kind="ad", minutes=30)
    services.run_due()
    grant = services.grant(second.grant.id)
    assert grant.state is S.ACTIVE
    assert grant.username == services.grant(first.grant.id).username
    directory = services.identity("ad")
    assert grant.username is not None
    assert directory.can_sign_in(grant.username, second.password)
    assert not directory.can_sign_in(grant.username, first.password)
    assert len(directory.accounts) == 1


@pytest.mark.parametrize("kind", ["m365", "ad"])
def test_the_grant_is_pinned_to_the_tenant_it_was_made_in(
    services: ServiceWorld, kind: str
) -> None:
    requested = services.request(kind=kind)
    services.run_due()
    directory = services.identity(kind)
    assert services.grant(requested.grant.id).tenant_id == directory.tenant
    directory.tenant = "another-tenant"
    services.advance(minutes=60)
    services.run_due()
    grant = services.grant(requested.grant.id)
    assert grant.state is S.REVOKE_FAILED  # refused at once: retrying reaches the same tenant
    assert grant.last_error is not None and "another tenant" in grant.last_error
    assert directory.faults.count("revoke") == 0


def _outbox(services: ServiceWorld, grant_id: str) -> list[OutboxMessage]:
    with services.ctx.uow() as uow:
        return list(uow.outbox.for_grant(grant_id))
