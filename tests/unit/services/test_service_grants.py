"""services/grants.py on the fakes: requesting, extending and revoking grants.

The database is real (SQLite in tmp_path); the PSA and the identity providers are the fakes of
jitadmin.testing, and time moves only with ``services.advance``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitadmin.core import texts
from jitadmin.core.errors import (
    ConflictError,
    TransientError,
    UpstreamUnavailableError,
    ValidationFailedError,
)
from jitadmin.core.grant import GrantState
from jitadmin.services import grants

from support.services import CUSTOMER, OTHER_COMPANY, TECH, ServiceWorld

S = GrantState


def test_a_request_is_provisioned_and_noted_on_the_ticket(services: ServiceWorld) -> None:
    ticket = services.open_ticket()
    requested = services.request(ticket_id=ticket)
    assert services.grant(requested.grant.id).state is S.PROVISIONING
    services.run_due()

    grant = services.grant(requested.grant.id)
    assert grant.state is S.ACTIVE
    directory = services.identity("m365")
    assert grant.username is not None
    assert directory.can_sign_in(grant.username, requested.password)
    account = directory.account_named(grant.username)
    assert account is not None and directory.holds_admin(account.object_id)
    (note,) = services.psa.notes(ticket)
    assert texts.carries_marker(note, texts.marker(grant.id, "granted"))
    kinds = services.audit_kinds(grant.id)
    assert kinds[:2] == ["grant.requested", "grant.provisioning"]
    assert "account.verified_granted" in kinds


@pytest.mark.parametrize(
    ("closed", "company", "rule"),
    [(True, "250", "is closed"), (False, OTHER_COMPANY, "belongs to another customer")],
    ids=["closed", "other-customer"],
)
def test_a_ticket_that_may_not_be_used_is_a_422_naming_ticket_id(
    services: ServiceWorld, closed: bool, company: str, rule: str
) -> None:
    ticket = services.open_ticket(company=company, closed=closed)
    with pytest.raises(ValidationFailedError) as refused:
        services.request(ticket_id=ticket)
    assert refused.value.status == 422
    assert [(p.field, rule in p.rule) for p in refused.value.problems] == [("ticket_id", True)]
    # Nothing was written or done anywhere.
    assert grants.list_grants(services.ctx, TECH) == []
    assert services.identity("m365").faults.calls == []
    assert services.psa.notes(ticket) == []


def test_an_unknown_ticket_is_a_422_and_a_psa_outage_a_503(services: ServiceWorld) -> None:
    with pytest.raises(ValidationFailedError) as unknown:
        services.request(ticket_id="999999")
    assert unknown.value.problems[0].field == "ticket_id"
    services.psa.faults.fail_next(TransientError("503 from the PSA"), on="get_ticket")
    with pytest.raises(UpstreamUnavailableError) as down:
        services.request()
    assert down.value.status == 503
    assert grants.list_grants(services.ctx, TECH) == []


def test_a_second_request_for_the_same_target_is_a_conflict(services: ServiceWorld) -> None:
    first = services.request()
    with pytest.raises(ConflictError) as clash:
        services.request()
    assert clash.value.existing_id == first.grant.id
    assert len(grants.list_grants(services.ctx, TECH)) == 1


def test_extend_moves_the_end_on_the_target_and_notes_it(services: ServiceWorld) -> None:
    ticket = services.open_ticket()
    requested = services.request(kind="ad", ticket_id=ticket, minutes=60)
    services.run_due()
    before = services.grant(requested.grant.id)
    services.advance(minutes=10)

    extended = grants.extend_grant(services.ctx, TECH, before.id, 30)
    assert extended.expires_at == before.expires_at + timedelta(minutes=30)
    assert services.grant(before.id).expires_at == extended.expires_at
    assert before.username is not None
    account = services.identity("ad").account_named(before.username)
    assert account is not None and account.expires_at == extended.expires_at
    services.run_due()
    assert texts.carries_marker(
        services.psa.notes(ticket)[-1], texts.marker(before.id, "extended-1")
    )


def test_extend_is_refused_once_the_ticket_is_closed(services: ServiceWorld) -> None:
    ticket = services.open_ticket()
    requested = services.request(ticket_id=ticket)
    services.run_due()
    before = services.grant(requested.grant.id)
    services.psa.close_ticket(ticket)
    with pytest.raises(ValidationFailedError) as refused:
        grants.extend_grant(services.ctx, TECH, before.id, 30)
    assert refused.value.problems[0].field == "ticket_id"
    assert services.grant(before.id).expires_at == before.expires_at
    assert services.identity("m365").faults.count("extend") == 0


def test_revoke_now_takes_the_access_away_before_the_end(services: ServiceWorld) -> None:
    ticket = services.open_ticket()
    requested = services.request(ticket_id=ticket)
    services.run_due()
    grants.revoke_now(services.ctx, TECH, requested.grant.id)
    services.run_due()
    grant = services.grant(requested.grant.id)
    assert grant.state is S.REVOKED
    assert grant.username is not None
    assert services.identity("m365").account_named(grant.username) is None
    assert texts.carries_marker(services.psa.notes(ticket)[-1], texts.marker(grant.id, "revoked"))


def test_a_chosen_password_with_a_part_of_the_account_names_is_a_422(
    services: ServiceWorld,
) -> None:
    # Windows refuses a password containing a displayName token of 3+ characters; AD builds the
    # tech account's displayName from the requester and the customer's prefix.
    ticket = services.open_ticket()
    for password in ("Xy7#Kq-TECH-4kLmzz!", "Xy7#Kq-PedroAviary-4kLm"):
        with pytest.raises(ValidationFailedError) as refused:
            grants.request_grant(
                services.ctx, TECH, customer=CUSTOMER, identity_provider="m365", ticket_id=ticket,
                duration_minutes=60, reason="install the accounting app", password=password,
            )  # fmt: skip
        assert [p.field for p in refused.value.problems] == ["password"]
        assert "3 or more characters" in refused.value.problems[0].rule
        assert password not in str(refused.value)
    assert "grant.requested" not in services.audit_kinds()
