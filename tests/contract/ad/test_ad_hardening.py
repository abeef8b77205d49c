"""Ticket hardening on a real Samba DC: Protected Users and "sensitive and cannot be delegated"."""

from __future__ import annotations

from jitadmin.adapters.ad.account import NOT_DELEGATED
from jitadmin.adapters.ad.pam import UNAVAILABLE

from support.ad import SambaDc, unique_requester
from support.ad_adapter import Steps, provider_for, revoke_spec, spec


def test_protected_users_and_not_delegated_for_the_grant(samba_dc: SambaDc) -> None:
    provider = provider_for(samba_dc.ad_connection(protected_users=True))
    granted = spec(unique_requester("hard"))
    steps = Steps()
    result = provider.grant(granted, steps)
    assert steps.names.index("hardened") < steps.names.index("enabled")
    assert steps.names[-1] == "verified_granted"
    with samba_dc.admin() as admin:
        user = admin.find(result.username)
        protected_sid = f"{admin.domain_sid()}-525"
        admins_sid = f"{admin.domain_sid()}-512"
    assert user is not None and user.enabled
    assert user.uac & NOT_DELEGATED
    assert {protected_sid, admins_sid} <= user.group_sids

    provider.revoke(revoke_spec(granted, result), Steps())
    with samba_dc.admin() as admin:
        after = admin.find(result.username)
    assert after is not None and not after.enabled
    assert admins_sid not in after.group_sids
    # Kept: harmless on a disabled account, and in place for the next grant.
    assert after.uac & NOT_DELEGATED and protected_sid in after.group_sids


def test_without_the_setting_the_account_is_not_hardened(samba_dc: SambaDc) -> None:
    provider = provider_for(samba_dc.ad_connection())
    steps = Steps()
    result = provider.grant(spec(unique_requester("soft")), steps)
    assert "hardened" not in steps.names
    with samba_dc.admin() as admin:
        user = admin.find(result.username)
        protected_sid = f"{admin.domain_sid()}-525"
    assert user is not None
    assert not user.uac & NOT_DELEGATED and protected_sid not in user.group_sids


def test_time_bound_membership_falls_back_visibly_where_the_forest_has_no_pam_feature(
    samba_dc: SambaDc,
) -> None:
    """Samba has no Privileged Access Management feature (MS-ADTS 3.1.1.9.2): the connection
    test says so with the fix, and a grant that asked for a time-bound membership records the
    fallback on its timeline, then gets a plain membership that revocation removes."""
    provider = provider_for(samba_dc.ad_connection(time_bound_membership=True))
    findings = provider.check()
    assert f"note: {UNAVAILABLE}" in findings
    granted = spec(unique_requester("ttl"))
    steps = Steps()
    result = provider.grant(granted, steps)
    assert steps.names.index("time_bound_unavailable") < steps.names.index("group_added")
    assert dict(steps.calls)["time_bound_unavailable"] == {"reason": UNAVAILABLE}
    assert "ttl_seconds" not in dict(steps.calls)["group_added"]
    assert "member_ttl" not in result.account
    with samba_dc.admin() as admin:
        user = admin.find(result.username)
        admins_sid = f"{admin.domain_sid()}-512"
    assert user is not None and admins_sid in user.group_sids
    provider.revoke(revoke_spec(granted, result), Steps())
    with samba_dc.admin() as admin:
        after = admin.find(result.username)
    assert after is not None and admins_sid not in after.group_sids


def test_without_the_setting_nothing_is_said_of_time_bound_membership(samba_dc: SambaDc) -> None:
    provider = provider_for(samba_dc.ad_connection())
    assert not any("time-bound" in finding for finding in provider.check())
    steps = Steps()
    provider.grant(spec(unique_requester("plain")), steps)
    assert "time_bound_unavailable" not in steps.names
