"""services/reconcile.py on the fakes: what the targets show against what the ledger says."""

from __future__ import annotations

from jitadmin.core import texts
from jitadmin.core.errors import TransientError
from jitadmin.core.grant import GrantState
from jitadmin.services.reconcile import reconcile

from support.services import ServiceWorld

S = GrantState


def object_id(services: ServiceWorld, kind: str, username: str | None) -> str:
    assert username is not None
    account = services.identity(kind).account_named(username)
    assert account is not None
    return account.object_id


def test_a_revoked_tech_account_put_back_into_the_admin_role_is_revoked_again(
    services: ServiceWorld,
) -> None:
    ticket = services.open_ticket()
    requested = services.request(kind="ad", ticket_id=ticket, minutes=30)
    services.run_due()
    services.advance(minutes=30)
    services.run_due()
    grant = services.grant(requested.grant.id)
    assert grant.state is S.REVOKED
    directory = services.identity("ad")
    account = object_id(services, "ad", grant.username)
    directory.put_in_admin_role(account)  # someone, by hand
    services.advance(minutes=1)

    report = reconcile(services.ctx, services.customer(), "ad")
    assert report.revoked == [grant.username]
    assert not directory.holds_admin(account)
    kinds = services.audit_kinds(grant.id)
    assert kinds.index("drift.detected") < kinds.index("drift.revoked")
    services.run_due()
    assert texts.carries_marker(services.psa.notes(ticket)[-1], texts.marker(grant.id, "drift-1"))


def test_an_admin_jitadmin_did_not_create_is_never_touched(services: ServiceWorld) -> None:
    directory = services.identity("m365")
    foreign = directory.add_foreign_account("admin@pedroaviary.example", admin=True)
    report = reconcile(services.ctx, services.customer(), "m365")
    assert (report.checked, report.revoked, report.errors) == (1, [], [])
    assert directory.holds_admin(foreign)
    assert directory.faults.count("revoke") == 0


def test_an_active_grant_whose_access_is_gone_is_flagged_and_still_ends(
    services: ServiceWorld,
) -> None:
    requested = services.request(minutes=60)
    services.run_due()
    grant = services.grant(requested.grant.id)
    directory = services.identity("m365")
    account = object_id(services, "m365", grant.username)
    directory.remove_from_admin_role(account)
    services.advance(minutes=5)

    report = reconcile(services.ctx, services.customer(), "m365")
    assert report.flagged == [grant.id]
    flagged = services.grant(grant.id)
    assert (flagged.state, flagged.access_missing) == (S.ACTIVE, True)
    directory.put_in_admin_role(account)
    reconcile(services.ctx, services.customer(), "m365")
    assert services.grant(grant.id).access_missing is False
    assert "drift.access_restored" in services.audit_kinds(grant.id)
    services.advance(minutes=55)
    services.run_due()
    assert services.grant(grant.id).state is S.REVOKED


def test_a_target_that_cannot_be_listed_is_reported_not_raised(services: ServiceWorld) -> None:
    directory = services.identity("m365")
    directory.faults.fail_next(TransientError("Graph answered 503"), on="list_managed")
    report = reconcile(services.ctx, services.customer(), "m365")
    assert report.checked == 0
    assert report.errors and "503" in report.errors[0]
