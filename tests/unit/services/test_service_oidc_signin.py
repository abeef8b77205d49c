"""services/oidc_signin.py on validated claims: who the user is, its role and customers, the
refusals (audited, nothing created), and disabling a user whose claims lost every role."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jitadmin.core.errors import ConflictError
from jitadmin.ports import AuditQuery
from jitadmin.services import admin, oidc_signin, sessions, signin_limits, users
from jitadmin.services.oidc_signin import OidcPolicy, OidcRefusedError
from jitadmin.services.users import UserChange

from support.services import CUSTOMER, ROOT, ServiceWorld

POLICY = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
ISSUER = "https://login.microsoftonline.com/tenant-id/v2.0"
ROLE_MAP = {"jit-admins": "admin", "jit-approvers": "approver", "jit-technicians": "technician"}
OIDC = OidcPolicy(issuer=ISSUER, role_map=ROLE_MAP)
NAME = "ada@msp.example"
Claims = dict[str, Any]


def claims(roles: list[str], *, name: str = NAME, sub: str = "sub-ada", **more: Any) -> Claims:
    return {"iss": ISSUER, "sub": sub, "preferred_username": name, "roles": roles,
            "amr": ["pwd", "mfa"], **more}  # fmt: skip


def events(services: ServiceWorld, kind: str) -> list[dict[str, Any]]:
    with services.ctx.uow() as uow:
        return [dict(e.data) for e in uow.audit.search(AuditQuery(), 10_000) if e.kind == kind]


def refused(services: ServiceWorld, given: dict[str, Any], oidc: OidcPolicy = OIDC) -> str:
    with pytest.raises(OidcRefusedError) as refusal:
        oidc_signin.sign_in(services.ctx, given, oidc, POLICY)
    return refusal.value.reason


def test_first_sign_in_creates_the_user_and_the_strongest_role_wins(
    services: ServiceWorld,
) -> None:
    signed = oidc_signin.sign_in(
        services.ctx, claims(["jit-technicians", "jit-approvers", "other"]), OIDC, POLICY
    )
    assert (signed.user.username, signed.user.role, signed.user.customers) == (
        NAME, "approver", None,
    )  # fmt: skip
    assert sessions.resolve(services.ctx, signed.session_id, POLICY) is not None
    with services.ctx.uow() as uow:
        assert uow.users.external_identity(NAME) == (ISSUER, "sub-ada")
    (created,) = [e for e in events(services, "user.created") if e.get("issuer") == ISSUER]
    assert created["role"] == "approver"
    (signed_in,) = [e for e in events(services, "auth.signed_in") if e.get("via") == "oidc"]
    assert signed_in["amr"] == ["pwd", "mfa"] and signed_in["issuer"] == ISSUER


def test_email_stands_in_for_preferred_username_and_one_string_is_one_value(
    services: ServiceWorld,
) -> None:
    given = {"sub": "s-1", "email": "bo@msp.example", "email_verified": True,
             "roles": "jit-admins", "amr": ["mfa"]}  # fmt: skip
    assert oidc_signin.sign_in(services.ctx, given, OIDC, POLICY).user.role == "admin"


def test_an_unverified_email_never_stands_in(services: ServiceWorld) -> None:
    """Only ``email_verified: true`` makes ``email`` the username: absent, false or the
    string "true" (not the boolean OIDC Core defines) are refused and create nothing."""
    base = {"sub": "s-2", "email": "eve@msp.example", "roles": ["jit-admins"], "amr": ["mfa"]}
    for verified in ({}, {"email_verified": False}, {"email_verified": "true"}):
        assert refused(services, base | verified) == "email not verified"
    with services.ctx.uow() as uow:
        assert uow.users.get("eve@msp.example") is None


def test_customers_claim_scopes_the_user(services: ServiceWorld) -> None:
    scoped = OidcPolicy(issuer=ISSUER, role_map=ROLE_MAP, customers_claim="customers")
    given = claims(["jit-technicians"], customers=[CUSTOMER, "no-such-customer"])
    assert oidc_signin.sign_in(services.ctx, given, scoped, POLICY).user.customers == (CUSTOMER,)
    # Absent: no customer at all (least privilege); "*": every customer.
    assert (
        oidc_signin.sign_in(
            services.ctx, claims(["jit-technicians"]), scoped, POLICY
        ).user.customers
        == ()
    )
    every = claims(["jit-technicians"], customers=["*"])
    assert oidc_signin.sign_in(services.ctx, every, scoped, POLICY).user.customers is None


def test_without_a_customers_claim_an_admins_restriction_stays(services: ServiceWorld) -> None:
    assert oidc_signin.sign_in(services.ctx, claims(["jit-technicians"]), OIDC, POLICY)
    change = UserChange(customers=(CUSTOMER,), set_customers=True)
    users.update_user(services.ctx, ROOT, NAME, change)
    again = oidc_signin.sign_in(services.ctx, claims(["jit-technicians"]), OIDC, POLICY)
    assert again.user.customers == (CUSTOMER,)


def test_no_role_creates_nothing_and_is_audited(services: ServiceWorld) -> None:
    assert refused(services, claims(["everyone"])) == "no role in the claims"
    with services.ctx.uow() as uow:
        assert uow.users.get(NAME) is None
    (event,) = events(services, "auth.oidc_refused")
    assert event["user"] == NAME and event["issuer"] == ISSUER and event["amr"] == ["pwd", "mfa"]


def test_mfa_is_required_unless_switched_off(services: ServiceWorld) -> None:
    no_mfa = claims(["jit-admins"], amr=["pwd"])
    assert refused(services, no_mfa) == "no mfa in amr"
    lenient = OidcPolicy(issuer=ISSUER, role_map=ROLE_MAP, require_mfa=False)
    assert oidc_signin.sign_in(services.ctx, no_mfa, lenient, POLICY).user.role == "admin"


def test_role_and_customers_follow_the_claims_and_no_role_disables(
    services: ServiceWorld,
) -> None:
    first = oidc_signin.sign_in(services.ctx, claims(["jit-admins"]), OIDC, POLICY)
    assert oidc_signin.sign_in(services.ctx, claims(["jit-technicians"]), OIDC, POLICY)
    (updated,) = events(services, "user.updated")
    assert updated["changes"] == {"role": {"from": "admin", "to": "technician"}}

    assert refused(services, claims([])) == "no role in the claims"
    with services.ctx.uow() as uow:
        user = uow.users.get(NAME)
    assert user is not None and user.disabled
    (disabled,) = events(services, "user.disabled")
    assert disabled["sessions"] == 2 and disabled["user"] == NAME
    assert sessions.resolve(services.ctx, first.session_id, POLICY) is None
    # The role back: still refused until an admin enables the account; then in again.
    assert refused(services, claims(["jit-technicians"])) == "account disabled"
    users.update_user(services.ctx, ROOT, NAME, UserChange(disabled=False))
    assert oidc_signin.sign_in(services.ctx, claims(["jit-technicians"]), OIDC, POLICY)


def test_local_accounts_and_rebound_names_are_never_taken_over(services: ServiceWorld) -> None:
    admin.add_user(services.ctx, ROOT, username="breakglass@msp.example", role="admin")
    local = claims(["jit-admins"], name="breakglass@msp.example", sub="sub-x")
    assert refused(services, local) == "a local account has this name"
    with services.ctx.uow() as uow:
        assert uow.users.external_identity("breakglass@msp.example") is None

    oidc_signin.sign_in(services.ctx, claims(["jit-admins"]), OIDC, POLICY)
    # The same name for another account at the provider (a reused UPN): refused.
    assert refused(services, claims(["jit-admins"], sub="sub-someone-else")).startswith(
        "username bound"
    )
    # The same account under a new name: refused, not a second user.
    assert refused(services, claims(["jit-admins"], name="ada.l@msp.example")).startswith(
        "subject already signs in as"
    )
    other_issuer = OidcPolicy(issuer="https://accounts.google.com", role_map=ROLE_MAP)
    assert refused(services, claims(["jit-admins"]), other_issuer).startswith("username bound")


def test_unusable_names_are_refused(services: ServiceWorld) -> None:
    assert refused(services, {"sub": "s", "roles": ["jit-admins"], "amr": ["mfa"]}) == (
        "no preferred_username or email"
    )
    assert refused(services, claims(["jit-admins"], name="bad\x00name")) == "unusable username"


def test_an_oidc_user_has_no_password_to_reset(services: ServiceWorld) -> None:
    oidc_signin.sign_in(services.ctx, claims(["jit-admins"]), OIDC, POLICY)
    assert users.show_user(services.ctx, ROOT, NAME).oidc_issuer == ISSUER
    with pytest.raises(ConflictError, match="single sign-on"):
        users.reset_password(services.ctx, ROOT, NAME)
    assert not events(services, "user.password_reset")
    admin.add_user(services.ctx, ROOT, username="local@msp.example", role="technician")
    assert users.show_user(services.ctx, ROOT, "local@msp.example").oidc_issuer is None


def test_failures_without_a_username_lock_their_address_not_everyone(
    services: ServiceWorld,
) -> None:
    """OIDC callback failures have no username: one address's flood locks that address (and at
    most the global budget), not a per-user bucket shared by every other browser."""
    ctx = services.ctx
    for _ in range(ctx.security.signin_failures_per_client):
        assert signin_limits.record_failure(ctx, "", "203.0.113.5", "oidc: state mismatch") is None
    assert signin_limits.locked_for(ctx, "", "203.0.113.5") is not None
    assert signin_limits.locked_for(ctx, "", "198.51.100.7") is None


def test_names_differing_only_in_case_are_one_user(services: ServiceWorld) -> None:
    """AD's tech-account owner compares names lowercased: an OIDC "Alice@..." must neither get
    round a local "alice@..." (or "BOB@..." round "Bob@...") nor be a second user."""
    admin.add_user(services.ctx, ROOT, username="alice@msp.example", role="admin")
    admin.add_user(services.ctx, ROOT, username="Bob@msp.example", role="admin")
    for name in ("Alice@msp.example", "BOB@MSP.EXAMPLE"):
        assert refused(services, claims(["jit-admins"], name=name, sub=name)) == (
            "a local account has this name"
        )
    with services.ctx.uow() as uow:
        assert {u.username for u in uow.users.all()} >= {"alice@msp.example", "Bob@msp.example"}
        assert uow.users.by_external(ISSUER, "Alice@msp.example") is None
        assert uow.users.by_external(ISSUER, "BOB@MSP.EXAMPLE") is None

    first = oidc_signin.sign_in(services.ctx, claims(["jit-admins"], name="Ada@MSP.example"),
                                OIDC, POLICY)  # fmt: skip
    assert first.user.username == NAME  # casefolded
    again = oidc_signin.sign_in(services.ctx, claims(["jit-technicians"], name="ADA@msp.example"),
                                OIDC, POLICY)  # fmt: skip
    assert again.user.username == NAME and again.user.role == "technician"
    other = claims(["jit-admins"], name="ada@MSP.EXAMPLE", sub="sub-someone-else")
    assert refused(services, other).startswith("username bound")


def test_losing_every_role_disables_whatever_is_refused_first(services: ServiceWorld) -> None:
    """A sign-in without MFA whose claims map to no role: refused for the MFA, and the user
    (the same issuer and sub) is disabled all the same; someone else's sub disables nothing."""
    first = oidc_signin.sign_in(services.ctx, claims(["jit-admins"]), OIDC, POLICY)
    assert refused(services, claims([], sub="sub-someone-else", amr=["pwd"])).startswith(
        "username bound"
    )
    with services.ctx.uow() as uow:
        user = uow.users.get(NAME)
    assert user is not None and not user.disabled
    assert refused(services, claims([], amr=["pwd"])) == "no mfa in amr"
    with services.ctx.uow() as uow:
        user = uow.users.get(NAME)
    assert user is not None and user.disabled
    (disabled,) = events(services, "user.disabled")
    assert disabled["user"] == NAME
    assert sessions.resolve(services.ctx, first.session_id, POLICY) is None
    # Renamed at the provider and no role any more: refused for the name, disabled all the same.
    users.update_user(services.ctx, ROOT, NAME, UserChange(disabled=False))
    assert refused(services, claims([], name="ada.l@msp.example")).startswith("subject already")
    with services.ctx.uow() as uow:
        user = uow.users.get(NAME)
    assert user is not None and user.disabled
