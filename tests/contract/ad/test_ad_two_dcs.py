"""Two real Samba DCs of one domain: the second joined the first (scripts/samba-dc.sh).

These DCs replicate only when a test says so (``replicate``), so the second one is exactly a
remote site's DC that has not received the last changes yet. Outcomes are read on each DC
through an Administrator's own session, never through the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jitadmin.adapters.ad.connector import SPEC
from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider
from jitadmin.core.errors import TransientError
from jitadmin.ports import AccessResult, AccessSpec

from support.ad import SambaDc, load_second_dc, unique_requester
from support.ad_adapter import Steps, logon, provider_for, revoke_spec, spec


@pytest.fixture(scope="module")
def second_dc(samba_dc: SambaDc) -> Iterator[SambaDc]:
    dc = load_second_dc(samba_dc)
    yield dc
    if not dc.answers():
        dc.start()


@pytest.fixture
def provider(samba_dc: SambaDc, second_dc: SambaDc) -> ActiveDirectoryIdentityProvider:
    return provider_for(samba_dc.ad_connection(other_dcs=second_dc.url))


def _admin_on(dc: SambaDc, sam: str) -> tuple[bool, bool]:
    """(enabled, in Domain Admins) of ``sam`` as ``dc`` shows it."""
    with dc.admin() as admin:
        user = admin.find(sam)
        assert user is not None, f"{sam} is not on {dc.url}"
        return user.enabled, admin.domain_admins_dn().lower() in user.member_of


def _granted_on_both(
    provider: ActiveDirectoryIdentityProvider, second_dc: SambaDc
) -> tuple[AccessSpec, AccessResult]:
    granted = spec(unique_requester())
    with pytest.raises(TransientError, match=r"has not replicated to ldaps://127\.0\.0\.78"):
        provider.grant(granted, Steps())
    second_dc.replicate("here")
    steps = Steps()
    result = provider.grant(granted, steps)
    assert steps.calls[-1] == ("verified_granted", {"other_dcs": [second_dc.url]})
    return granted, result


def test_a_grant_is_verified_only_once_the_second_dc_shows_it(
    provider: ActiveDirectoryIdentityProvider, second_dc: SambaDc
) -> None:
    granted, result = _granted_on_both(provider, second_dc)
    assert _admin_on(second_dc, result.username) == (True, True)
    assert logon(second_dc, result.username, granted.password)[0]


def test_revoke_is_written_and_read_back_on_the_second_dc_before_it_says_revoked(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, second_dc: SambaDc
) -> None:
    granted, result = _granted_on_both(provider, second_dc)
    sam = result.username
    seen: dict[str, tuple[bool, bool]] = {}
    steps = Steps(
        after={
            # Done on the first DC: the second has not replicated it (the hazard itself).
            "password_reset": lambda: seen.update(after_first=_admin_on(second_dc, sam)),
            "verified_revoked": lambda: seen.update(when_revoked=_admin_on(second_dc, sam)),
        }
    )
    provider.revoke(revoke_spec(granted, result), steps)

    assert seen["after_first"] == (True, True)
    assert seen["when_revoked"] == (False, False)
    assert steps.calls[-1] == ("verified_revoked", {"other_dcs": [second_dc.url]})
    assert _admin_on(samba_dc, sam) == (False, False)
    assert not logon(second_dc, sam, granted.password)[0]
    # Once replication runs, both DCs agree on the revoked state.
    second_dc.replicate()
    assert _admin_on(samba_dc, sam) == (False, False)
    assert _admin_on(second_dc, sam) == (False, False)


def test_a_stopped_second_dc_keeps_the_revocation_unverified_until_it_is_back(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, second_dc: SambaDc
) -> None:
    granted, result = _granted_on_both(provider, second_dc)
    sam = result.username
    second_dc.stop()
    try:
        steps = Steps()
        with pytest.raises(TransientError, match=r"ldaps://127\.0\.0\.78:636 cannot be reached"):
            provider.revoke(revoke_spec(granted, result), steps)
        assert "verified_revoked" not in steps.names
        assert "password_reset" in steps.names  # the first DC is done already
        assert _admin_on(samba_dc, sam) == (False, False)
    finally:
        second_dc.start()
    # Back, and not replicated: it still shows the grant until the retry writes there.
    assert _admin_on(second_dc, sam) == (True, True)
    retry = Steps()
    provider.revoke(revoke_spec(granted, result), retry)
    assert retry.calls[-1] == ("verified_revoked", {"other_dcs": [second_dc.url]})
    assert _admin_on(second_dc, sam) == (False, False)


def test_a_grant_skips_a_dc_that_cannot_be_reached(
    provider: ActiveDirectoryIdentityProvider, second_dc: SambaDc
) -> None:
    granted, result = _granted_on_both(provider, second_dc)
    provider.revoke(revoke_spec(granted, result), Steps())
    again = spec(granted.requester)
    second_dc.stop()
    try:
        steps = Steps()
        provider.grant(again, steps)
        # It cannot let anyone in while it is down; the grant is verified where it can be.
        assert steps.calls[-1] == ("verified_granted", {})
    finally:
        second_dc.start()


def test_check_names_the_writable_dcs_and_the_pdc_emulator(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, second_dc: SambaDc
) -> None:
    findings = provider.check()
    assert (
        "writable DCs of the domain: dc1.pedroaviary.local (PDC emulator), dc2.pedroaviary.local"
        in findings
    )
    assert f"revocations are also written to and read back on: {second_dc.url}" in findings
    alone = provider_for(samba_dc.ad_connection()).check()
    assert any(
        f.startswith("note: 1 other writable DC(s) only learn of a revocation by replication")
        for f in alone
    )
    through_second = provider_for(second_dc.ad_connection()).check()
    assert any(
        "not to the PDC emulator dc1.pedroaviary.local; set url to the PDC emulator" in f
        for f in through_second
    )


def test_other_dcs_must_be_ldap_urls() -> None:
    assert SPEC.check({"other_dcs": "ldaps://dc2.example.local ldap://dc3.example.local:389"}) == []
    assert SPEC.check({"other_dcs": "ldaps://dc2.example.local, https://dc3"}) == [
        ("other_dcs", "'https://dc3' must be ldaps://host[:port] or ldap://host[:port]")
    ]


def test_discovery_finds_the_other_writable_dc_and_a_revoke_waits_for_it(
    samba_dc: SambaDc, provider: ActiveDirectoryIdentityProvider, second_dc: SambaDc
) -> None:
    granted, result = _granted_on_both(provider, second_dc)
    discovering = provider_for(samba_dc.ad_connection(discover_dcs=True))
    findings = discovering.check()
    # Found under CN=Sites by its dNSHostName; the DC in url is not listed again.
    assert (
        "revocations are also written to and read back on: ldaps://dc2.pedroaviary.local:636"
        in findings
    )
    # That name does not resolve here (no DNS): a DC that cannot be reached, so not revoked.
    steps = Steps()
    with pytest.raises(TransientError, match=r"dc2\.pedroaviary\.local:636 cannot be reached"):
        discovering.revoke(revoke_spec(granted, result), steps)
    assert "verified_revoked" not in steps.names
    provider.revoke(revoke_spec(granted, result), Steps())


def test_writes_go_to_the_pdc_emulator_when_it_is_listed(
    samba_dc: SambaDc, second_dc: SambaDc
) -> None:
    # url names the second DC; the first, in other_dcs, holds the PDC emulator role.
    through_second = provider_for(second_dc.ad_connection(other_dcs=samba_dc.url))
    granted = spec(unique_requester())
    with pytest.raises(TransientError, match=r"has not replicated to ldaps://127\.0\.0\.78"):
        through_second.grant(granted, Steps())
    with samba_dc.admin() as first, second_dc.admin() as second:
        sam = through_second.planned_username(granted.grant_id, granted.requester)
        assert first.find(sam) is not None  # created on the PDC emulator
        assert second.find(sam) is None
    findings = through_second.check()
    assert not any("not to the PDC emulator" in f for f in findings)
    assert f"revocations are also written to and read back on: {second_dc.url}" in findings
    second_dc.replicate("here")
    result = through_second.grant(granted, Steps())
    steps = Steps()
    through_second.revoke(revoke_spec(granted, result), steps)
    assert steps.calls[-1] == ("verified_revoked", {"other_dcs": [second_dc.url]})
    assert _admin_on(samba_dc, sam) == (False, False)
    assert _admin_on(second_dc, sam) == (False, False)
