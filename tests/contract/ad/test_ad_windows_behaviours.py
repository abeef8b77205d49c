"""What Windows domain controllers do that a plain Samba DC hides, imitated on the real Samba DC.

Each test puts the domain into the state a Windows DC would leave (a lockout, an expired
password, an unreadable tokenGroups, an AdminSDHolder stamp) with an Administrator's own LDAPS
session, then checks what the adapter does about it. Every test has its own requester.
"""

from __future__ import annotations

import pytest

from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider
from jitadmin.core.errors import MisconfiguredError, RejectedError, TransientError
from jitadmin.core.passwords import generate_password
from jitadmin.ports import AccessSpec, RevokeSpec

from support.ad import SambaDc, unique_requester
from support.ad_adapter import Steps, logon, provider_for, revoke_spec, spec
from support.ad_security import TOKEN_GROUPS, deny_reading, read_dacl, write_dacl


@pytest.fixture
def provider(samba_dc: SambaDc) -> ActiveDirectoryIdentityProvider:
    return provider_for(samba_dc.ad_connection())


# -- lockout -----------------------------------------------------------------------------


class CrashError(Exception):
    """The worker died right after a step was recorded."""


def test_a_grant_unlocks_a_locked_out_tech_account(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    """A lockout lives in lockoutTime, not userAccountControl, and an administrator's password
    reset does not clear it; the DC reports it as LOCKOUT (0x10) in
    msDS-User-Account-Control-Computed. The grant writes lockoutTime 0.
    https://learn.microsoft.com/windows/win32/adschema/a-lockouttime
    https://learn.microsoft.com/windows/win32/adschema/a-msds-user-account-control-computed

    Samba (unlike Windows) also unlocks on any userAccountControl write, so the account here is
    already enabled when it is locked out: a grant that crashed right after enabling it, and a
    saved old password that locked it before the retry. The retry writes no userAccountControl.
    """
    request = spec(unique_requester())
    sam = provider.planned_username(request.grant_id, request.requester)

    def locked_out_then_crash() -> None:
        with samba_dc.admin() as admin:
            user = admin.find(sam)
            assert user is not None and user.enabled
            admin.lock_out(user.dn)
            admin.set(user.dn, unicodePwd=f'"{generate_password()}"'.encode("utf-16-le"))
            assert admin.read(user.dn).locked_out  # as on Windows: a reset does not unlock
        raise CrashError

    crashed = Steps(after={"enabled": locked_out_then_crash})
    with pytest.raises(CrashError):
        provider.grant(request, crashed)
    recorded = {k: v for _, data in crashed.calls for k, v in data.items()}
    retry = Steps()
    result = provider.grant(
        AccessSpec(request.grant_id, request.requester, request.password, request.expires_at,
                   recorded),
        retry,
    )  # fmt: skip
    assert retry.names[-1] == "verified_granted"
    with samba_dc.admin() as admin:
        user = admin.read(result.account["dn"])
    assert not user.locked_out and user.number("lockoutTime") == 0
    assert logon(samba_dc, sam, request.password) == (True, "")
    provider.revoke(revoke_spec(request, result), Steps())


def test_a_lockout_that_returns_before_the_read_back_is_not_verified(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    """The read-back checks LOCKOUT (0x10) in msDS-User-Account-Control-Computed: a lockout
    that comes back after jitadmin wrote lockoutTime 0 (a saved old password retried somewhere)
    leaves a grant nobody can log on with, so it is not verified.
    https://learn.microsoft.com/windows/win32/adschema/a-msds-user-account-control-computed
    """
    request = spec(unique_requester())
    sam = provider.planned_username(request.grant_id, request.requester)

    def locked_again() -> None:
        with samba_dc.admin() as admin:
            user = admin.find(sam)
            assert user is not None
            admin.lock_out(user.dn)

    steps = Steps(after={"group_added": locked_again})
    with pytest.raises(TransientError, match=f"{sam} is locked out") as refused:
        provider.grant(request, steps)
    assert "verified_granted" not in steps.names
    assert request.password not in str(refused.value)
    # A retry unlocks it again and verifies.
    retry = Steps()
    result = provider.grant(request, retry)
    assert retry.names[-1] == "verified_granted"
    assert logon(samba_dc, sam, request.password) == (True, "")
    provider.revoke(revoke_spec(request, result), Steps())


# -- tokenGroups -------------------------------------------------------------------------


def test_an_unreadable_token_groups_is_cannot_verify_never_not_a_member(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    """tokenGroups is computed for principals allowed to read it; a real account always has
    its primary group in it, so an empty value means "may not read", never "in no group".
    Here an ACE denies the bind account (Administrator) reading tokenGroups on the tech account,
    and Samba then returns none. The adapter cross-checks Domain Admins' member: that proves
    the grant's direct membership, but its absence cannot rule out a nested one.
    https://learn.microsoft.com/windows/win32/adschema/a-tokengroups
    """
    request = spec(unique_requester())
    sam = provider.planned_username(request.grant_id, request.requester)
    original: list[bytes] = []

    def hide_token_groups() -> None:
        with samba_dc.admin() as admin:
            user = admin.find(sam)
            assert user is not None
            original.append(read_dacl(admin, user.dn))
            deny_reading(admin, user.dn, TOKEN_GROUPS, f"{admin.domain_sid()}-500")
            assert admin.read(user.dn).group_sids == set()  # Samba honours the deny

    steps = Steps(after={"account_created": hide_token_groups})
    result = provider.grant(request, steps)
    assert steps.names[-1] == "verified_granted"  # Domain Admins' member lists it

    revoking = Steps()
    with pytest.raises(MisconfiguredError, match="cannot verify the Domain Admins membership"):
        provider.revoke(revoke_spec(request, result), revoking)
    assert "verified_revoked" not in revoking.names
    listed = [a for a in provider.list_managed() if a.username == sam]
    assert listed and listed[0].holds_admin  # what cannot be ruled out counts as held
    with samba_dc.admin() as admin:
        user = admin.read(result.account["dn"])
        # The revocation itself was done; only its proof is missing.
        assert not user.enabled and user.member_of == []
        write_dacl(admin, user.dn, original[0])
    again = Steps()
    provider.revoke(revoke_spec(request, result), again)
    assert again.names[-1] == "verified_revoked"


# -- pwdLastSet after the reset ----------------------------------------------------------


def _expire_password_of(samba_dc: SambaDc, sam: str) -> None:
    with samba_dc.admin() as admin:
        user = admin.find(sam)
        assert user is not None
        admin.set(user.dn, pwdLastSet="0")
        assert admin.read(user.dn).password_expired


@pytest.mark.parametrize("expired_after", ["password_set", "group_added"])
def test_a_password_the_dc_expired_at_once_fails_the_grant_naming_the_right(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, expired_after: str
) -> None:
    """Where hardening took Unexpire-Password from Authenticated Users, a Windows DC answers an
    administrator's reset with pwdLastSet 0: the password is expired at once, the technician
    must change it at first logon and RDP with NLA fails.
    https://learn.microsoft.com/openspecs/windows_protocols/ms-samr/22b79fa8-13bd-4952-a399-9d5a93b2256f

    Samba always sets pwdLastSet to the current time, so it cannot be made to reproduce the
    hardened state; the test writes pwdLastSet 0 explicitly right after the adapter's reset
    (``password_set``) and, for the read-back, after the group was added. Either way the grant
    stops with the fix, and nothing reports it as verified.
    """
    request = spec(unique_requester())
    sam = provider.planned_username(request.grant_id, request.requester)
    steps = Steps(after={expired_after: lambda: _expire_password_of(samba_dc, sam)})
    bind_user = samba_dc.admin_upn
    with pytest.raises(MisconfiguredError, match=f"grant Unexpire-Password to {bind_user}"):
        provider.grant(request, steps)
    assert "verified_granted" not in steps.names
    if expired_after == "password_set":
        # Stopped before enabling: nobody holds a half-usable account.
        assert "enabled" not in steps.names
        with samba_dc.admin() as admin:
            user = admin.find(sam)
        assert user is not None and not user.enabled and user.member_of == []
    bound, message = logon(samba_dc, sam, request.password)
    assert not bound and ("data 773" in message or "data 533" in message)
    provider.revoke(RevokeSpec(request.grant_id, request.requester, sam, {}), Steps())


# -- complexity and displayName ----------------------------------------------------------


@pytest.mark.parametrize("part", ["requester", "prefix", "sam"])
def test_a_password_containing_a_display_name_token_is_refused_before_anything_exists(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, part: str
) -> None:
    """Windows complexity refuses a password that contains the whole sAMAccountName or any
    displayName token of 3+ characters (split at , . - _ # space and tab), case-insensitively.
    Samba does not check this, so the adapter refuses it itself, before creating the account.
    https://learn.microsoft.com/openspecs/windows_protocols/ms-samr/cb1f380a-0a51-4705-84cd-eea1b85953e0
    """
    requester = unique_requester()
    sam = provider.planned_username("any", requester)
    local = requester.split("@")[0].split(".")[1]  # the unique part of "tech.<hex>"
    inside = {"requester": local.upper(), "prefix": "PedroAviary", "sam": sam}[part]
    request = spec(requester, password=f"Kq4#{inside}-Zx7!mW")
    steps = Steps()
    with pytest.raises(RejectedError, match="Windows password complexity") as refused:
        provider.grant(request, steps)
    assert "displayName" in str(refused.value) and request.password not in str(refused.value)
    assert steps.names == []
    with samba_dc.admin() as admin:
        assert admin.find(sam) is None  # nothing was created


def test_a_part_of_a_display_name_token_is_allowed(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    """Only whole tokens count: "jitad" is part of the token "(jitadmin)", and is accepted."""
    request = spec(unique_requester(), password="Kq4#jitad-Zx7!mWpedro")
    result = provider.grant(request, Steps())
    assert logon(samba_dc, result.username, request.password) == (True, "")
    provider.revoke(revoke_spec(request, result), Steps())
