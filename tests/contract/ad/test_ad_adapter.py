"""ActiveDirectoryIdentityProvider against a real Samba AD DC over LDAPS (scripts/samba-dc.sh).

Each test uses its own requester, so the tests share one domain without seeing each other.
Outcomes are read back through an Administrator's own LDAPS session, never through the adapter.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3 import LEVEL, MODIFY_DELETE
from ldap3.utils.conv import escape_filter_chars

from jitadmin.adapters.ad import ldap as ad_ldap
from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider
from jitadmin.core import naming
from jitadmin.core.errors import (
    AlreadyExistsError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)
from jitadmin.core.passwords import generate_password
from jitadmin.ports import AccessSpec, RevokeSpec

from support.ad import SambaDc, unique_requester
from support.ad_adapter import Steps, logon, provider_for, revoke_spec, spec

GRACE = timedelta(minutes=5)


@pytest.fixture
def provider(samba_dc: SambaDc) -> ActiveDirectoryIdentityProvider:
    return provider_for(samba_dc.ad_connection())


# -- the connection test -----------------------------------------------------------------


def test_check_finds_domain_admins_by_sid_and_the_rights_it_needs(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    findings = provider.check()
    with samba_dc.admin() as admin:
        admins_dn = admin.domain_admins_dn()
        sid = admin.domain_sid()
    assert f"Domain Admins (RID 512): {admins_dn}" in findings
    assert any(sid in f for f in findings)
    assert f"may create user accounts in CN=Users,{samba_dc.base_dn}" in findings
    assert "may change the members of Domain Admins" in findings
    assert any("certificate verified" in f for f in findings)


def test_check_refuses_a_bind_account_without_rights(samba_dc: SambaDc) -> None:
    sam = f"helpdesk{uuid.uuid4().hex[:6]}"
    password = generate_password()
    with samba_dc.admin() as admin:
        admin.add_user(sam, password=password)
    weak = provider_for(
        samba_dc.ad_connection(bind_user=f"{sam}@{samba_dc.dns_name}", bind_password=password)
    )
    with pytest.raises(MisconfiguredError, match="may not create user accounts"):
        weak.check()
    with pytest.raises(MisconfiguredError, match="lacks the rights") as refused:
        weak.grant(spec(unique_requester()), Steps())
    assert "create" in str(refused.value) and password not in str(refused.value)


def test_bad_credentials_and_untrusted_certificates_are_misconfiguration(
    samba_dc: SambaDc,
) -> None:
    wrong = "Wrong-password-4-sure!"
    bad_password = provider_for(samba_dc.ad_connection(bind_password=wrong))
    with pytest.raises(MisconfiguredError, match="wrong user name or password") as refused:
        bad_password.check()
    assert wrong not in str(refused.value)

    stranger = provider_for(samba_dc.ad_connection(ca_pem=_other_ca_pem()))
    with pytest.raises(MisconfiguredError, match="not trusted"):
        stranger.check()
    no_ca = provider_for(samba_dc.ad_connection(ca_pem=None))
    with pytest.raises(MisconfiguredError, match="not trusted"):
        no_ca.check()
    with pytest.raises(MisconfiguredError, match="ldaps://"):
        provider_for(samba_dc.ad_connection(url="http://x")).check()
    missing_ou = provider_for(samba_dc.ad_connection(ou="OU=Nowhere"))
    with pytest.raises(MisconfiguredError, match=r"OU=Nowhere,DC=.* does not exist"):
        missing_ou.check()


def test_starttls_on_389_works_and_an_unreachable_dc_is_transient(samba_dc: SambaDc) -> None:
    starttls = provider_for(samba_dc.ad_connection(url=f"ldap://{samba_dc.ip}:389"))
    assert "may change the members of Domain Admins" in starttls.check()
    # Nothing listens on 127.0.0.1:1: refused at once, like a DC that is down.
    down = provider_for(samba_dc.ad_connection(url="ldaps://127.0.0.1:1"))
    with pytest.raises(TransientError, match="unreachable"):
        down.grant(spec(unique_requester()), Steps())


# -- grant -------------------------------------------------------------------------------


def test_grant_creates_a_tagged_account_in_domain_admins(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    requester = unique_requester()
    request = spec(requester)
    steps = Steps()
    result = provider.grant(request, steps)

    sam = naming.ad_sam_account_name(requester, "pedroaviary")
    assert result.username == sam == provider.planned_username(request.grant_id, requester)
    assert steps.names == [
        "account_created", "password_set", "expiry_set", "enabled", "group_added",
        "verified_granted",
    ]  # fmt: skip
    with samba_dc.admin() as admin:
        user = admin.find(sam)
        admins_dn = admin.domain_admins_dn()
        sid = admin.domain_sid()
    assert user is not None
    assert user.enabled
    assert user.text("employeeType") == "jitadmin"
    assert user.text("info") == f"jitadmin-managed; requester={requester}"
    assert admins_dn.lower() in user.member_of
    assert f"{sid}-512" in user.group_sids
    assert user.number("primaryGroupID") == 513  # never Domain Admins as primary group
    assert user.account_expires == request.expires_at + GRACE
    full = naming.ad_account_name(requester, "pedroaviary")
    assert user.text("userPrincipalName") == f"{full}@{samba_dc.dns_name}"
    assert result.account["object_guid"] == str(uuid.UUID(bytes_le=user.guid))
    assert logon(samba_dc, sam, request.password) == (True, "")


def test_the_password_is_set_before_the_account_is_enabled(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Samba would let a password-less account be enabled; Windows would not. Check the order.
    operations: list[str] = []
    original = ad_ldap.LdapSession.modify

    def spy(self: ad_ldap.LdapSession, dn: str, changes: dict[str, Any], **kw: Any) -> bool:
        operations.extend(f"{name}:{change[0][0]}" for name, change in changes.items())
        return original(self, dn, changes, **kw)

    monkeypatch.setattr(ad_ldap.LdapSession, "modify", spy)
    provider.grant(spec(unique_requester()), Steps())
    assert operations == [
        "unicodePwd:MODIFY_REPLACE", "lockoutTime:MODIFY_REPLACE", "accountExpires:MODIFY_REPLACE",
        "userAccountControl:MODIFY_REPLACE", "member:MODIFY_ADD",
    ]  # fmt: skip


def test_grant_twice_is_a_no_op_and_revoke_twice_too(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    request = spec(unique_requester())
    first = provider.grant(request, Steps())
    again = Steps()
    second = provider.grant(
        AccessSpec(request.grant_id, request.requester, request.password, request.expires_at,
                   first.account),
        again,
    )  # fmt: skip
    assert second.account["object_guid"] == first.account["object_guid"]
    assert "account_created" not in again.names
    assert "account_reused" not in again.names  # the same account the grant recorded
    with samba_dc.admin() as admin:
        members = admin.members(admin.domain_admins_dn())
    assert members.count(first.account["dn"].lower()) == 1

    provider.revoke(revoke_spec(request, first), Steps())
    twice = Steps()
    provider.revoke(revoke_spec(request, first), twice)
    assert twice.names[-1] == "verified_revoked"
    with samba_dc.admin() as admin:
        user = admin.find(first.username)
    assert user is not None and not user.enabled and user.member_of == []


def test_revoke_then_a_new_grant_re_enables_the_same_account(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    first = spec(unique_requester())
    granted = provider.grant(first, Steps())
    steps = Steps()
    provider.revoke(revoke_spec(first, granted), steps)
    assert steps.names == ["group_removed", "disabled", "password_reset", "verified_revoked"]
    sam = granted.username
    with samba_dc.admin() as admin:
        user = admin.find(sam)
        assert user is not None
        assert not user.enabled and user.member_of == []
        assert user.number("primaryGroupID") == 513
        # Enabled again by hand: the one-time password still must not work.
        admin.set(user.dn, userAccountControl="512")
    bound, message = logon(samba_dc, sam, first.password)
    assert not bound and "data 52e" in message

    second = spec(first.requester)
    again = Steps()
    regranted = provider.grant(second, again)
    assert regranted.account["object_guid"] == granted.account["object_guid"]
    assert again.names[0] == "account_reused"
    assert logon(samba_dc, sam, second.password)[0]
    assert not logon(samba_dc, sam, first.password)[0]
    provider.revoke(revoke_spec(second, regranted), Steps())


class CrashError(Exception):
    """The process dies right after a step was recorded."""


class CrashingSteps(Steps):
    def __init__(self, crash_at: str) -> None:
        super().__init__()
        self.crash_at = crash_at

    def __call__(self, step: str, data: dict[str, Any]) -> None:
        super().__call__(step, data)
        if step == self.crash_at:
            raise CrashError(step)


@pytest.mark.parametrize(
    "crash_at", ["account_created", "password_set", "expiry_set", "enabled", "group_added"]
)
def test_a_grant_interrupted_after_any_step_converges_on_retry(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, crash_at: str
) -> None:
    request = spec(unique_requester())
    before = CrashingSteps(crash_at)
    with pytest.raises(CrashError):
        provider.grant(request, before)
    recorded: dict[str, Any] = {}
    for _, data in before.calls:
        recorded.update(data)
    retry = Steps()
    result = provider.grant(
        AccessSpec(request.grant_id, request.requester, request.password, request.expires_at,
                   recorded),
        retry,
    )  # fmt: skip
    assert "account_created" not in retry.names
    assert retry.names[-1] == "verified_granted"
    assert result.account["object_guid"] == recorded["object_guid"]
    assert logon(samba_dc, result.username, request.password) == (True, "")
    provider.revoke(revoke_spec(request, result), Steps())


@pytest.mark.parametrize("crash_at", ["group_removed", "disabled", "password_reset"])
def test_a_revoke_interrupted_after_any_step_converges_on_retry(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, crash_at: str
) -> None:
    request = spec(unique_requester())
    result = provider.grant(request, Steps())
    with pytest.raises(CrashError):
        provider.revoke(revoke_spec(request, result), CrashingSteps(crash_at))
    retry = Steps()
    provider.revoke(revoke_spec(request, result), retry)
    assert retry.names[-1] == "verified_revoked"
    with samba_dc.admin() as admin:
        user = admin.find(result.username)
    assert user is not None and not user.enabled and user.member_of == []
    assert not logon(samba_dc, result.username, request.password)[0]


def test_revoke_after_someone_already_removed_the_group(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    request = spec(unique_requester())
    granted = provider.grant(request, Steps())
    with samba_dc.admin() as admin:
        admin.ok(
            admin.conn.modify(
                admin.domain_admins_dn(), {"member": [(MODIFY_DELETE, [granted.account["dn"]])]}
            )
        )
    steps = Steps()
    provider.revoke(revoke_spec(request, granted), steps)
    assert steps.names[-1] == "verified_revoked"
    assert not logon(samba_dc, granted.username, request.password)[0]


def test_revoke_clears_an_orphaned_admin_count_and_a_primary_group(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    # Samba runs no AdminSDHolder task, and nobody should make Domain Admins a primary group:
    # fake both, as a Windows DC (or a careless admin) would leave them.
    request = spec(unique_requester())
    granted = provider.grant(request, Steps())
    with samba_dc.admin() as admin:
        sid = admin.domain_sid()
        admin.set(granted.account["dn"], adminCount="1", primaryGroupID="512")
        assert admin.read(granted.account["dn"]).number("primaryGroupID") == 512
    steps = Steps()
    provider.revoke(revoke_spec(request, granted), steps)
    assert "admin_count_cleared" in steps.names
    with samba_dc.admin() as admin:
        user = admin.read(granted.account["dn"])
    assert user.number("adminCount") is None
    assert user.number("primaryGroupID") == 513
    assert f"{sid}-512" not in user.group_sids
    assert not user.enabled


def test_a_revoke_with_nothing_created_verifies_nothing_exists(
    provider: ActiveDirectoryIdentityProvider,
) -> None:
    request = spec(unique_requester())
    steps = Steps()
    provider.revoke(RevokeSpec(request.grant_id, request.requester, None, {}), steps)
    assert steps.names == ["verified_revoked"]


# -- refusals ----------------------------------------------------------------------------


def test_an_account_jitadmin_does_not_manage_is_never_touched(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    requester = unique_requester()
    sam = naming.ad_sam_account_name(requester, "pedroaviary")
    with samba_dc.admin() as admin:
        dn = admin.add_user(sam, description="the customer's own account", userAccountControl="514")
        before = admin.read(dn)
    request = spec(requester)
    with pytest.raises(AlreadyExistsError, match="not managed by jitadmin") as refused:
        provider.grant(request, Steps())
    assert sam in str(refused.value)
    # The failed grant's clean-up revoke leaves it alone too.
    steps = Steps()
    provider.revoke(RevokeSpec(request.grant_id, requester, sam, {}), steps)
    assert steps.calls == [("verified_revoked", {"foreign_account_left_alone": True})]
    with samba_dc.admin() as admin:
        after = admin.read(dn)
    assert after.raw == before.raw


def test_another_requesters_tech_account_is_not_taken_over(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    requester = unique_requester()
    sam = naming.ad_sam_account_name(requester, "pedroaviary")
    with samba_dc.admin() as admin:
        admin.add_user(
            sam, employeeType="jitadmin", info="jitadmin-managed; requester=someone@msp.example"
        )
    with pytest.raises(AlreadyExistsError, match="another requester"):
        provider.grant(spec(requester), Steps())


def test_a_weak_password_is_refused_with_a_clear_message(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider
) -> None:
    request = spec(unique_requester(), password="short1")
    with pytest.raises(RejectedError, match="password policy") as refused:
        provider.grant(request, Steps())
    assert "short1" not in str(refused.value)
    with samba_dc.admin() as admin:
        user = admin.find(provider.planned_username(request.grant_id, request.requester))
    assert user is not None and not user.enabled and user.member_of == []


# -- names -------------------------------------------------------------------------------


def test_over_long_names_are_cut_to_20_characters_with_a_stable_hash(
    samba_dc: SambaDc,
) -> None:
    stem = f"averyveryverylongfirstname{uuid.uuid4().hex[:4]}"
    one, two = f"{stem}.one@msp.example", f"{stem}.two@msp.example"
    provider = provider_for(samba_dc.ad_connection())
    again = provider_for(samba_dc.ad_connection())
    request = spec(one)
    result = provider.grant(request, Steps())
    assert len(result.username) <= 20
    assert result.username == again.planned_username("another-grant", one)
    assert provider.planned_username("x", two) != result.username
    with samba_dc.admin() as admin:
        user = admin.find(result.username)
    assert user is not None
    full = naming.ad_account_name(one, "pedroaviary")
    assert len(full) > 20
    assert user.dn.lower().startswith(f"cn={full},")
    assert user.text("userPrincipalName") == f"{full}@{samba_dc.dns_name}"
    provider.revoke(revoke_spec(request, result), Steps())


def test_names_that_need_escaping(samba_dc: SambaDc) -> None:
    # An OU whose name needs DN escaping (and filter escaping wherever a DN goes into a
    # filter), and a requester made of filter syntax.
    ou_name = f"JIT (Tier 0)\\, *admins* {uuid.uuid4().hex[:4]}"
    ou = f"OU={ou_name},{samba_dc.base_dn}"
    with samba_dc.admin() as admin:
        admin.ok(admin.conn.add(ou, ["top", "organizationalUnit"]))
        administrator = admin.find("Administrator")
    provider = provider_for(samba_dc.ad_connection(ou=f"OU={ou_name}"))
    hostile = f"*)(sAMAccountName=*{uuid.uuid4().hex[:4]}@msp.example"
    request = spec(hostile)
    steps = Steps()
    result = provider.grant(request, steps)
    assert steps.names[0] == "account_created"
    with samba_dc.admin() as admin:
        user = admin.find(result.username)
        assert user is not None
        in_ou = admin.conn.search(
            ou, f"(sAMAccountName={escape_filter_chars(result.username)})", LEVEL
        )
        assert in_ou, admin.conn.result
        assert "(" not in result.username and "*" not in result.username
        assert admin.find("Administrator") == administrator  # nothing else matched or changed
    assert "may create user accounts in" in " ".join(provider.check())
    provider.revoke(revoke_spec(request, result), Steps())
    with samba_dc.admin() as admin:
        user = admin.find(result.username)
    assert user is not None and not user.enabled and user.member_of == []


def test_no_password_reaches_a_log(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = spec(unique_requester())
    result = provider.grant(request, Steps())
    revoke_password = "Revoke-pw-that-nobody-knows-9"
    quiet = provider_for(samba_dc.ad_connection(), revoke_password=lambda: revoke_password)
    quiet.revoke(revoke_spec(request, result), Steps())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records  # the adapter does log its steps
    for secret in (request.password, revoke_password, samba_dc.admin_password):
        assert secret not in text
    assert samba_dc.admin_password not in repr(samba_dc.ad_connection())


def _other_ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else's CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()
