"""services/users.py on the fakes: show, change, disable, reset, end sessions; scope; audit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitadmin.core.errors import (
    AccountDisabledError,
    ForbiddenError,
    NotFoundError,
    SignInFailedError,
    ValidationFailedError,
)
from jitadmin.core.grant import GrantState
from jitadmin.ports import AuditQuery, User
from jitadmin.services import admin, approvals, sessions, users
from jitadmin.services.users import UserChange

from support.services import CUSTOMER, ROOT, TECH, ServiceWorld

POLICY = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


def _tech(services: ServiceWorld, customers: list[str] | None = None) -> admin.NewUser:
    return admin.add_user(
        services.ctx, ROOT, username=TECH.username, role="technician", customers=customers
    )


def _events(services: ServiceWorld) -> list[tuple[str, dict[str, object]]]:
    with services.ctx.uow() as uow:
        return [(e.kind, e.data) for e in uow.audit.search(AuditQuery(), 10_000)]


def test_show_user_counts_sessions_and_tokens(services: ServiceWorld) -> None:
    new = _tech(services)
    sessions.sign_in(services.ctx, TECH.username, new.password, POLICY)
    shown = users.show_user(services.ctx, ROOT, TECH.username)
    assert (shown.user.role, shown.user.disabled, shown.sessions, shown.tokens) == (
        "technician", False, 1, 1,
    )  # fmt: skip


def test_disabling_ends_sessions_stops_tokens_and_sign_in(services: ServiceWorld) -> None:
    new = _tech(services)
    signed = sessions.sign_in(services.ctx, TECH.username, new.password, POLICY)
    assert admin.authenticate_token(services.ctx, new.token) is not None

    done = users.update_user(services.ctx, ROOT, TECH.username, UserChange(disabled=True))

    assert done.sessions_ended == 1 and done.detail.user.disabled
    assert sessions.resolve(services.ctx, signed.session_id, POLICY) is None
    assert admin.authenticate_token(services.ctx, new.token) is None
    with pytest.raises(AccountDisabledError):
        sessions.sign_in(services.ctx, TECH.username, new.password, POLICY)
    with pytest.raises(SignInFailedError) as wrong:  # a wrong password says nothing more
        sessions.sign_in(services.ctx, TECH.username, "not-the-password", POLICY)
    assert not isinstance(wrong.value, AccountDisabledError)
    kinds = [kind for kind, _ in _events(services)]
    assert kinds[-3:] == ["user.disabled", "auth.sign_in_failed", "auth.sign_in_failed"]
    assert ("auth.sign_in_failed", {"username": TECH.username, "client": "",
                                    "why": "account disabled"}) in _events(services)  # fmt: skip

    users.update_user(services.ctx, ROOT, TECH.username, UserChange(disabled=False))
    assert admin.authenticate_token(services.ctx, new.token) is not None
    sessions.sign_in(services.ctx, TECH.username, new.password, POLICY)
    assert _events(services)[-2][0] == "user.enabled"


def test_disabling_with_revoke_grants_revokes_through_the_revoke_path(
    services: ServiceWorld,
) -> None:
    _tech(services)
    active = services.request().grant.id
    services.run_due()
    assert services.grant(active).state is GrantState.ACTIVE

    done = users.update_user(
        services.ctx, ROOT, TECH.username, UserChange(disabled=True, revoke_grants=True)
    )

    assert done.revoked_grants == [active] and done.not_revoked == []
    assert services.grant(active).state is GrantState.REVOKING
    assert services.grant(active).revoke_requested_by == ROOT.username
    services.run_due()
    assert services.grant(active).state is GrantState.REVOKED
    assert "grant.revoked" in services.audit_kinds(active)


def test_revoke_grants_cancels_a_request_still_awaiting_approval(services: ServiceWorld) -> None:
    _tech(services)
    approvals.put_policy(
        services.ctx, ROOT, CUSTOMER, approval_required=["m365"], approvals_needed=1,
        approval_timeout_minutes=60,
    )  # fmt: skip
    waiting = services.request().grant.id
    assert services.grant(waiting).state is GrantState.PENDING_APPROVAL
    done = users.update_user(
        services.ctx, ROOT, TECH.username, UserChange(disabled=True, revoke_grants=True)
    )
    assert done.revoked_grants == [waiting]
    assert services.grant(waiting).state is GrantState.CANCELLED
    assert services.identity("m365").accounts == {}  # nothing was ever created for it


def test_role_and_customers_change_and_are_audited(services: ServiceWorld) -> None:
    _tech(services)
    change = UserChange(role="auditor", customers=(CUSTOMER,), set_customers=True)
    done = users.update_user(services.ctx, ROOT, TECH.username, change)
    assert (done.detail.user.role, done.detail.user.customers) == ("auditor", (CUSTOMER,))
    kind, data = _events(services)[-1]
    assert kind == "user.updated"
    assert data["changes"] == {
        "role": {"from": "technician", "to": "auditor"},
        "customers": {"from": None, "to": [CUSTOMER]},
    }
    again = users.update_user(
        services.ctx, ROOT, TECH.username, UserChange(customers=None, set_customers=True)
    )
    assert again.detail.user.customers is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (UserChange(role="overlord"), "role"),
        (UserChange(customers=("nobody-here",), set_customers=True), "customers"),
        (UserChange(), "role"),
        (UserChange(customers=("x" * 100,), set_customers=True), "customers"),
    ],
)
def test_bad_changes_name_the_field_and_change_nothing(
    services: ServiceWorld, change: UserChange, field: str
) -> None:
    _tech(services)
    before = (_events(services), users.show_user(services.ctx, ROOT, TECH.username))
    with pytest.raises(ValidationFailedError) as refused:
        users.update_user(services.ctx, ROOT, TECH.username, change)
    assert [p.field for p in refused.value.problems] == [field]
    assert (_events(services), users.show_user(services.ctx, ROOT, TECH.username)) == before


def test_a_restricted_admin_manages_only_users_inside_its_scope(services: ServiceWorld) -> None:
    admin_a = admin.add_user(
        services.ctx, ROOT, username="admin.a", role="admin", customers=[CUSTOMER]
    ).user
    _tech(services)  # unrestricted: outside admin_a's scope
    inside = admin.add_user(
        services.ctx, ROOT, username="tech.a", role="technician", customers=[CUSTOMER]
    ).user
    before = _events(services)
    for call in (
        lambda: users.show_user(services.ctx, admin_a, TECH.username),
        lambda: users.update_user(services.ctx, admin_a, TECH.username, UserChange(disabled=True)),
        lambda: users.reset_password(services.ctx, admin_a, TECH.username),
        lambda: users.end_sessions(services.ctx, admin_a, TECH.username),
        lambda: users.show_user(services.ctx, admin_a, "nobody"),
    ):
        with pytest.raises(NotFoundError):
            call()
    # Widening a user it manages to every customer is beyond it.
    with pytest.raises(ForbiddenError) as wider:
        users.update_user(
            services.ctx, admin_a, inside.username, UserChange(customers=None, set_customers=True)
        )
    assert str(wider.value).startswith("customers:")
    assert _events(services) == before
    users.update_user(services.ctx, admin_a, inside.username, UserChange(disabled=True))
    assert users.show_user(services.ctx, admin_a, inside.username).user.disabled


def test_nobody_changes_or_resets_their_own_account(services: ServiceWorld) -> None:
    me = admin.add_user(services.ctx, ROOT, username="admin.two", role="admin").user
    before = _events(services)
    with pytest.raises(ForbiddenError):
        users.update_user(services.ctx, me, me.username, UserChange(disabled=True))
    with pytest.raises(ForbiddenError):
        users.reset_password(services.ctx, me, me.username)
    assert _events(services) == before


def test_only_admins_manage_users(services: ServiceWorld) -> None:
    _tech(services)
    auditor = User("someone", "auditor")
    with pytest.raises(ForbiddenError):
        users.show_user(services.ctx, auditor, TECH.username)
    with pytest.raises(ForbiddenError):
        users.end_sessions(services.ctx, auditor, TECH.username)


def test_password_reset_replaces_the_password_and_ends_sessions(services: ServiceWorld) -> None:
    new = _tech(services)
    signed = sessions.sign_in(services.ctx, TECH.username, new.password, POLICY)
    reset = users.reset_password(services.ctx, ROOT, TECH.username)
    assert reset.password != new.password and reset.sessions_ended == 1
    assert sessions.resolve(services.ctx, signed.session_id, POLICY) is None
    with pytest.raises(SignInFailedError):
        sessions.sign_in(services.ctx, TECH.username, new.password, POLICY)
    sessions.sign_in(services.ctx, TECH.username, reset.password, POLICY)
    assert admin.authenticate_token(services.ctx, new.token) is not None  # tokens stay
    assert ("user.password_reset", {"user": TECH.username, "sessions": 1}) in _events(services)
    assert all(reset.password not in str(data) for _, data in _events(services))


def test_end_sessions_signs_the_user_out_everywhere(services: ServiceWorld) -> None:
    new = _tech(services)
    first = sessions.sign_in(services.ctx, TECH.username, new.password, POLICY)
    second = sessions.sign_in(services.ctx, TECH.username, new.password, POLICY)
    assert users.end_sessions(services.ctx, ROOT, TECH.username) == 2
    for signed in (first, second):
        assert sessions.resolve(services.ctx, signed.session_id, POLICY) is None
    assert _events(services)[-1] == ("user.sessions_ended", {"user": TECH.username, "sessions": 2})
