"""services/approvals.py on the fakes: the customer's policy, pending requests, approving,
rejecting, cancelling, expiring, and the cap on customers held at once.

Nothing is created in the directory before enough approvals; every end other than approval
leaves the directory untouched and (for rejection and expiry) posts one ticket note.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from jitadmin.core import texts
from jitadmin.core.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationFailedError,
)
from jitadmin.core.grant import GrantState
from jitadmin.ports import User
from jitadmin.services import admin, approvals, grants, users
from jitadmin.services.users import UserChange

from support.services import (
    AD_SETTINGS,
    CUSTOMER,
    M365_SETTINGS,
    ROOT,
    TECH,
    ServiceWorld,
    service_world,
)

S = GrantState
APPROVER = User("approver.one@msp.example", "approver")
SECOND = User("approver.two@msp.example", "approver")
AUDITOR = User("auditor@msp.example", "auditor")
OTHER_TECH = User("tech.two@msp.example", "technician")


@pytest.fixture(scope="module")
def people_template(tmp_path_factory: pytest.TempPathFactory, services_template: Path) -> Path:
    """The services database with the people below in its user store, made once: hashing
    their passwords (argon2) per test would cost more than all the tests themselves."""
    directory = tmp_path_factory.mktemp("approvals-template")
    seeded = service_world(directory, services_template)
    for user in (TECH, OTHER_TECH, APPROVER, SECOND, AUDITOR):
        admin.add_user(seeded.ctx, ROOT, username=user.username, role=user.role)
    seeded.close()
    return directory / "jitadmin.db"


@pytest.fixture
def world(tmp_path: Path, people_template: Path) -> Iterator[ServiceWorld]:
    """The services world with its people in the user store (approval re-checks them)."""
    people = service_world(tmp_path, people_template)
    yield people
    people.close()


def require_approval(world: ServiceWorld, needed: int = 1, timeout: int = 60) -> None:
    approvals.put_policy(
        world.ctx, ROOT, CUSTOMER, approval_required=["m365"], approvals_needed=needed,
        approval_timeout_minutes=timeout,
    )  # fmt: skip


def test_the_default_policy_needs_no_approval(world: ServiceWorld) -> None:
    policy = approvals.get_policy(world.ctx, ROOT, CUSTOMER)
    assert (policy.approval_required, policy.approvals_needed) == ((), 1)
    assert (policy.approval_timeout_minutes, policy.max_duration_minutes) == (60, 480)
    requested = world.request()
    assert world.grant(requested.grant.id).state is S.PROVISIONING


def test_a_policy_change_is_audited_and_keeps_what_it_does_not_name(world: ServiceWorld) -> None:
    approvals.put_policy(world.ctx, ROOT, CUSTOMER, max_duration_minutes=120)
    require_approval(world, needed=2)
    policy = approvals.get_policy(world.ctx, ROOT, CUSTOMER)
    assert policy.max_duration_minutes == 120
    assert (policy.approval_required, policy.approvals_needed) == (("m365",), 2)
    with world.ctx.uow() as uow:
        changes = [e for e in uow.audit.entries() if e.kind == "customer.policy_changed"]
    assert [c.data["to"]["approvals_needed"] for c in changes] == [1, 2]
    assert changes[-1].actor == ROOT.username and changes[-1].customer == CUSTOMER


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("approvals_needed", 0),
        ("approval_timeout_minutes", 0),
        ("max_duration_minutes", 100_000),
        ("approval_required", ["m365", "okta"]),
    ],
)
def test_a_bad_policy_is_a_422_naming_the_field_and_changes_nothing(
    world: ServiceWorld, field: str, value: object
) -> None:
    before = approvals.get_policy(world.ctx, ROOT, CUSTOMER)
    with pytest.raises(ValidationFailedError) as refused:
        approvals.put_policy(world.ctx, ROOT, CUSTOMER, **{field: value})
    assert [p.field for p in refused.value.problems] == [field]
    assert approvals.get_policy(world.ctx, ROOT, CUSTOMER) == before


def test_only_admins_of_the_customer_read_or_change_the_policy(world: ServiceWorld) -> None:
    for user in (TECH, APPROVER, AUDITOR):
        with pytest.raises(ForbiddenError):
            approvals.get_policy(world.ctx, user, CUSTOMER)
        with pytest.raises(ForbiddenError):
            approvals.put_policy(world.ctx, user, CUSTOMER, approvals_needed=2)
    elsewhere = User("admin.b@msp.example", "admin", ("northwind",))
    with pytest.raises(NotFoundError):
        approvals.put_policy(world.ctx, elsewhere, CUSTOMER, approvals_needed=2)
    assert approvals.get_policy(world.ctx, ROOT, CUSTOMER).approvals_needed == 1


def test_a_request_needing_approval_waits_and_creates_nothing(world: ServiceWorld) -> None:
    require_approval(world)
    requested = world.request()
    assert requested.password  # shown now, as for any request
    world.run_due()
    grant = world.grant(requested.grant.id)
    assert grant.state is S.PENDING_APPROVAL
    assert grant.approvals_needed == 1 and grant.approval_expires_at is not None
    directory = world.identity("m365")
    assert directory.accounts == {} and directory.faults.count("grant") == 0
    assert world.audit_kinds(grant.id) == ["grant.requested", "grant.pending_approval"]
    # Identity providers the policy does not name are provisioned at once.
    other = world.request(kind="ad")
    assert world.grant(other.grant.id).state is S.PROVISIONING


def test_an_approval_provisions_and_the_granted_note_names_the_approver(
    world: ServiceWorld,
) -> None:
    require_approval(world)
    ticket = world.open_ticket()
    requested = world.request(ticket_id=ticket)
    approved = approvals.approve(world.ctx, APPROVER, requested.grant.id, "  looks right  ")
    assert approved.state is S.PROVISIONING
    world.run_due()
    grant = world.grant(requested.grant.id)
    assert grant.state is S.ACTIVE
    assert grant.approvals[0]["by"] == APPROVER.username
    assert grant.approvals[0]["comment"] == "looks right"
    assert world.identity("m365").can_sign_in(grant.username or "", requested.password)
    (note,) = world.psa.notes(ticket)
    assert texts.carries_marker(note, texts.marker(grant.id, "granted"))
    assert f"Approved by {APPROVER.username}." in note
    kinds = world.audit_kinds(grant.id)
    assert kinds[:5] == [
        "grant.requested", "grant.pending_approval", "grant.approved", "grant.provisioning",
        "grant.tenant_pinned",
    ]  # fmt: skip


def test_nobody_approves_their_own_request_and_only_approvers_or_admins_decide(
    world: ServiceWorld,
) -> None:
    require_approval(world)
    own = world.request(actor=ROOT)  # an admin's own request
    with pytest.raises(ForbiddenError, match="own requester"):
        approvals.approve(world.ctx, ROOT, own.grant.id, None)
    requested = world.request()
    for user in (TECH, OTHER_TECH, AUDITOR):
        with pytest.raises(ForbiddenError):
            approvals.approve(world.ctx, user, requested.grant.id, None)
        with pytest.raises(ForbiddenError):
            approvals.reject(world.ctx, user, requested.grant.id, "no")
    out_of_scope = User("approver.b@msp.example", "approver", ("northwind",))
    with pytest.raises(NotFoundError):
        approvals.approve(world.ctx, out_of_scope, requested.grant.id, None)
    assert world.grant(requested.grant.id).state is S.PENDING_APPROVAL
    assert world.grant(own.grant.id).approvals == []
    approvals.approve(world.ctx, ROOT, requested.grant.id, None)  # another admin's is fine
    assert world.grant(requested.grant.id).state is S.PROVISIONING


def test_two_approvals_needed_and_never_twice_by_the_same_person(world: ServiceWorld) -> None:
    require_approval(world, needed=2)
    requested = world.request()
    first = approvals.approve(world.ctx, APPROVER, requested.grant.id, None)
    assert first.state is S.PENDING_APPROVAL
    with pytest.raises(ConflictError, match="already approved"):
        approvals.approve(world.ctx, APPROVER, requested.grant.id, None)
    world.run_due()
    assert world.identity("m365").accounts == {}
    second = approvals.approve(world.ctx, SECOND, requested.grant.id, "second pair of eyes")
    assert second.state is S.PROVISIONING
    assert second.approvers == [APPROVER.username, SECOND.username]
    assert "grant.approval_given" in world.audit_kinds(requested.grant.id)
    with pytest.raises(ConflictError, match="pending_approval"):
        approvals.approve(world.ctx, ROOT, requested.grant.id, None)


def test_a_policy_change_never_weakens_a_pending_request(world: ServiceWorld) -> None:
    require_approval(world, needed=2)
    requested = world.request()
    approvals.put_policy(world.ctx, ROOT, CUSTOMER, approval_required=[], approvals_needed=1)
    approvals.approve(world.ctx, APPROVER, requested.grant.id, None)
    assert world.grant(requested.grant.id).state is S.PENDING_APPROVAL


def test_a_ticket_closed_while_pending_makes_approval_a_422_naming_ticket_id(
    world: ServiceWorld,
) -> None:
    require_approval(world)
    ticket = world.open_ticket()
    requested = world.request(ticket_id=ticket)
    world.psa.close_ticket(ticket)
    with pytest.raises(ValidationFailedError) as refused:
        approvals.approve(world.ctx, APPROVER, requested.grant.id, None)
    assert [p.field for p in refused.value.problems] == ["ticket_id"]
    grant = world.grant(requested.grant.id)
    assert grant.state is S.PENDING_APPROVAL and grant.approvals == []


def test_a_requester_who_is_gone_cannot_be_approved(world: ServiceWorld) -> None:
    require_approval(world)
    stranger = User("not.a.user@msp.example", "technician")
    requested = world.request(actor=stranger)
    with pytest.raises(ValidationFailedError) as refused:
        approvals.approve(world.ctx, APPROVER, requested.grant.id, None)
    assert [p.field for p in refused.value.problems] == ["requester"]
    assert world.grant(requested.grant.id).state is S.PENDING_APPROVAL


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (UserChange(customers=("northwind",), set_customers=True), "may no longer use customer"),
        (UserChange(disabled=True), "may no longer request"),
        (UserChange(role="auditor"), "may no longer request"),
    ],
    ids=["out-of-scope", "disabled", "no-longer-a-technician"],
)
def test_a_requester_changed_since_the_request_cannot_be_approved(
    world: ServiceWorld, change: UserChange, rule: str
) -> None:
    require_approval(world)
    requested = world.request()
    admin.create_customer(world.ctx, ROOT, slug="northwind", name="Northwind", psa_company_id="7")
    users.update_user(world.ctx, ROOT, TECH.username, change)
    with pytest.raises(ValidationFailedError) as refused:
        approvals.approve(world.ctx, APPROVER, requested.grant.id, None)
    assert [(p.field, rule in p.rule) for p in refused.value.problems] == [("requester", True)]
    assert world.grant(requested.grant.id).state is S.PENDING_APPROVAL


def test_a_rejection_needs_a_comment_ends_the_request_and_notes_the_ticket_once(
    world: ServiceWorld,
) -> None:
    require_approval(world)
    ticket = world.open_ticket()
    requested = world.request(ticket_id=ticket)
    with pytest.raises(ValidationFailedError) as refused:
        approvals.reject(world.ctx, APPROVER, requested.grant.id, "   ")
    assert [p.field for p in refused.value.problems] == ["comment"]
    assert world.grant(requested.grant.id).state is S.PENDING_APPROVAL
    rejected = approvals.reject(world.ctx, APPROVER, requested.grant.id, "use the break-glass")
    assert rejected.state is S.REJECTED and rejected.is_finished
    world.run_due()
    world.run_due()
    (note,) = world.psa.notes(ticket)
    assert texts.carries_marker(note, texts.marker(rejected.id, "rejected"))
    assert APPROVER.username in note and "use the break-glass" in note
    assert world.identity("m365").accounts == {}
    with world.ctx.uow() as uow:
        assert uow.grants.password_sealed(rejected.id) is None
    # A finished request frees the requester to ask again.
    assert world.request().grant.state is S.PENDING_APPROVAL


def test_the_requester_cancels_a_pending_request(world: ServiceWorld) -> None:
    require_approval(world)
    requested = world.request()
    with pytest.raises(NotFoundError):
        approvals.cancel(world.ctx, OTHER_TECH, requested.grant.id)
    with pytest.raises(ForbiddenError):
        approvals.cancel(world.ctx, APPROVER, requested.grant.id)
    cancelled = approvals.cancel(world.ctx, TECH, requested.grant.id)
    assert cancelled.state is S.CANCELLED
    assert world.audit_kinds(cancelled.id)[-1] == "grant.cancelled"
    with pytest.raises(ConflictError):
        approvals.approve(world.ctx, APPROVER, requested.grant.id, None)
    active = world.request(kind="ad")
    with pytest.raises(ConflictError, match="only a pending_approval"):
        approvals.cancel(world.ctx, TECH, active.grant.id)
    world.run_due()
    assert world.identity("m365").accounts == {}


def test_no_decision_in_time_expires_the_request_and_notes_the_ticket_once(
    world: ServiceWorld,
) -> None:
    require_approval(world, timeout=30)
    ticket = world.open_ticket()
    requested = world.request(ticket_id=ticket)
    world.advance(minutes=29)
    world.run_due()
    assert world.grant(requested.grant.id).state is S.PENDING_APPROVAL
    with world.ctx.uow() as uow:
        assert uow.grants.next_deadline(world.clock.now()) == requested.grant.approval_expires_at
    world.advance(minutes=1)
    with pytest.raises(ConflictError, match="expired"):
        approvals.approve(world.ctx, APPROVER, requested.grant.id, None)
    world.run_due()
    world.run_due()
    grant = world.grant(requested.grant.id)
    assert grant.state is S.EXPIRED
    assert world.audit_kinds(grant.id)[-1] == "grant.expired"
    (note,) = world.psa.notes(ticket)
    assert texts.carries_marker(note, texts.marker(grant.id, "approval_expired"))
    assert world.identity("m365").faults.count("grant") == 0


def test_approvers_list_the_pending_requests_they_may_decide(world: ServiceWorld) -> None:
    require_approval(world)
    requested = world.request()
    assert [g.id for g in approvals.pending(world.ctx, APPROVER)] == [requested.grant.id]
    assert approvals.pending(world.ctx, User("approver.b@msp.example", "approver", ("x",))) == []
    with pytest.raises(ForbiddenError):
        approvals.pending(world.ctx, TECH)


def test_one_user_holds_grants_in_at_most_the_capped_number_of_customers(
    world: ServiceWorld,
) -> None:
    world.ctx.security = replace(world.ctx.security, max_active_grants_per_user=1)
    admin.create_customer(world.ctx, ROOT, slug="northwind", name="Northwind", psa_company_id="7")
    m365 = {"tenant_id": world.identity("m365").tenant, **M365_SETTINGS}
    admin.put_connection(world.ctx, ROOT, "northwind", "m365", m365)
    admin.put_connection(world.ctx, ROOT, "northwind", "ad", dict(AD_SETTINGS))
    world.request()
    world.request(kind="ad")  # the same customer again: still one customer
    elsewhere = world.psa.add_ticket("7", "Reset the printer")
    with pytest.raises(ConflictError, match="the limit is 1 customers") as refused:
        grants.request_grant(
            world.ctx, TECH, customer="northwind", identity_provider="m365",
            ticket_id=elsewhere, duration_minutes=30, reason="printer driver install",
        )  # fmt: skip
    assert "JITADMIN_MAX_ACTIVE_GRANTS_PER_USER" in str(refused.value)
    with world.ctx.uow() as uow:
        assert uow.grants.live_customers(TECH.username) == {CUSTOMER}
