"""AdminSDHolder and SDProp, imitated on the real Samba DC (Samba runs no SDProp task).

The stamp is applied by hand as Windows applies it every 60 minutes: the DACL of
CN=AdminSDHolder,CN=System,<domain> copied onto the object (every ACE explicit), SE_DACL_PROTECTED
set, adminCount=1. Domain Admins is shared by every test on this DC: the fixture that stamps it
or delegates on it holds a machine-wide lock, puts its DACL and adminCount back byte for byte,
and checks that it did.
https://learn.microsoft.com/windows-server/identity/ad-ds/plan/security-best-practices/appendix-c--protected-accounts-and-groups-in-active-directory
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from ldap3 import MODIFY_DELETE

from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider
from jitadmin.core.errors import MisconfiguredError
from jitadmin.core.passwords import generate_password

from support.ad import DcAdmin, SambaDc, exclusive, unique_requester
from support.ad_adapter import Steps, logon, provider_for, revoke_spec, spec
from support.ad_security import (
    SE_DACL_PROTECTED,
    aces,
    allow,
    control,
    has_inherited_aces,
    read_dacl,
    sdprop_dacl,
    stamp_like_sdprop,
    write_dacl,
)

GENERIC_ALL = 0x000F01FF
WRITE_PROPERTY = 0x20
CONTAINER_INHERIT = 0x02
MEMBER = "bf9679c0-0de6-11d0-a285-00aa003049e2"  # schemaIDGUID of member


class SharedDomainAdmins:
    """Domain Admins, changed for one test and put back exactly afterwards."""

    def __init__(self, admin: DcAdmin) -> None:
        self.admin = admin
        self.dn = admin.domain_admins_dn()

    def stamp(self) -> None:
        stamp_like_sdprop(self.admin, self.dn)

    def delegate_member_writes(self, sid: str) -> None:
        allow(self.admin, self.dn, sid, WRITE_PROPERTY, object_type=MEMBER)


@pytest.fixture
def domain_admins(samba_dc: SambaDc) -> Iterator[SharedDomainAdmins]:
    # Another run of these tests (another worktree) must not save our stamped DACL as its
    # "original": one at a time.
    with exclusive("domain-admins-dacl"), samba_dc.admin() as admin:
        shared = SharedDomainAdmins(admin)
        original = read_dacl(admin, shared.dn)
        admin_count = admin.read(shared.dn).text("adminCount")
        try:
            yield shared
        finally:
            write_dacl(admin, shared.dn, original)
            if admin_count is None:
                admin.conn.modify(shared.dn, {"adminCount": [(MODIFY_DELETE, [])]})
            else:
                admin.set(shared.dn, adminCount=admin_count)
            assert read_dacl(admin, shared.dn) == original
            assert admin.read(shared.dn).text("adminCount") == admin_count


@pytest.fixture
def provider(samba_dc: SambaDc) -> ActiveDirectoryIdentityProvider:
    return provider_for(samba_dc.ad_connection())


def test_revocation_completes_after_sdprop_and_turns_inheritance_back_on(
    samba_dc: SambaDc,
    provider: ActiveDirectoryIdentityProvider,
    domain_admins: SharedDomainAdmins,
) -> None:
    """Revoke clears adminCount and SE_DACL_PROTECTED (nTSecurityDescriptor written with the
    SD-flags control, 1.2.840.113556.1.4.801), so the account inherits from its OU again and
    no longer differs unseen from an (adminCount=1) audit; both are read back.
    https://learn.microsoft.com/openspecs/windows_protocols/ms-adts/3888c2b7-35b9-45b7-afeb-b772aa932dd0
    """
    request = spec(unique_requester())
    granted = provider.grant(request, Steps())
    dn = granted.account["dn"]
    with samba_dc.admin() as admin:
        domain_admins.stamp()
        stamp_like_sdprop(admin, dn)
        stamped = read_dacl(admin, dn)
        assert control(stamped) & SE_DACL_PROTECTED and aces(stamped) == sdprop_dacl(admin)
        assert not has_inherited_aces(stamped)

    steps = Steps()
    provider.revoke(revoke_spec(request, granted), steps)
    assert steps.names == [
        "group_removed", "disabled", "password_reset", "admin_count_cleared", "verified_revoked",
    ]  # fmt: skip
    assert dict(steps.calls)["admin_count_cleared"] == {
        "inheritance_restored": True, "admin_count_cleared": True,
    }  # fmt: skip
    with samba_dc.admin() as admin:
        user = admin.read(dn)
        after = read_dacl(admin, dn)
        members = admin.members(domain_admins.dn)
    assert not control(after) & SE_DACL_PROTECTED
    assert has_inherited_aces(after)  # the OU's ACEs apply again
    assert user.number("adminCount") is None
    assert not user.enabled and dn.lower() not in members
    assert not logon(samba_dc, granted.username, request.password)[0]
    # Nothing left to undo: a second revoke changes nothing.
    again = Steps()
    provider.revoke(revoke_spec(request, granted), again)
    assert "admin_count_cleared" not in again.names and again.names[-1] == "verified_revoked"


def test_a_bind_account_with_only_delegated_rights_fails_the_connection_test(
    samba_dc: SambaDc, domain_admins: SharedDomainAdmins
) -> None:
    """Delegated "create users" on an OU and "write members" on Domain Admins pass for an hour,
    then SDProp replaces both DACLs and the bind account can no longer take the access away.
    The connection test asks about the DACL that survives (sDRightsEffective on
    CN=AdminSDHolder) and names the fix; the stamp then shows why.
    https://learn.microsoft.com/windows/win32/adschema/a-sdrightseffective
    """
    tag = uuid.uuid4().hex[:6]
    ou_name = f"JIT delegated {tag}"
    bind_sam, bind_password = f"deleg{tag}", generate_password()
    with samba_dc.admin() as admin:
        ou_dn = f"OU={ou_name},{samba_dc.base_dn}"
        admin.ok(admin.conn.add(ou_dn, ["top", "organizationalUnit"]))
        admin.add_user(bind_sam, password=bind_password)
        bind_sid = admin.sid_of(bind_sam)
        allow(admin, ou_dn, bind_sid, GENERIC_ALL, flags=CONTAINER_INHERIT)
        domain_admins.delegate_member_writes(bind_sid)
    delegated = provider_for(
        samba_dc.ad_connection(
            bind_user=f"{bind_sam}@{samba_dc.dns_name}",
            bind_password=bind_password,
            ou=f"OU={ou_name}",
        )
    )
    with pytest.raises(MisconfiguredError) as refused:
        delegated.check()
    message = str(refused.value)
    assert "may not change the DACL of CN=AdminSDHolder,CN=System" in message
    assert "Tier 0" in message and "SDProp" in message
    assert "may not create user accounts" not in message  # the OU right is there
    assert "members of Domain Admins" not in message  # and so is this one, for now

    # It can grant today...
    request = spec(unique_requester())
    granted = delegated.grant(request, Steps())
    # ...but after the stamp it cannot even take the account out of Domain Admins.
    with samba_dc.admin() as admin:
        domain_admins.stamp()
        stamp_like_sdprop(admin, granted.account["dn"])
    with pytest.raises(MisconfiguredError, match="lacks the rights"):
        delegated.revoke(revoke_spec(request, granted), Steps())
    # A Domain-Admin-equivalent bind still can, and undoes the stamp.
    administrator = provider_for(samba_dc.ad_connection(ou=f"OU={ou_name}"))
    steps = Steps()
    administrator.revoke(revoke_spec(request, granted), steps)
    assert steps.names[-2:] == ["admin_count_cleared", "verified_revoked"]


def test_the_connection_test_says_which_rights_survive_sdprop_and_that_it_is_tier_0(
    provider: ActiveDirectoryIdentityProvider,
) -> None:
    findings = " | ".join(provider.check())
    assert "may change the DACL of CN=AdminSDHolder,CN=System" in findings
    assert "survive the stamp" in findings
    assert "an account that can change Domain Admins is Tier 0" in findings
