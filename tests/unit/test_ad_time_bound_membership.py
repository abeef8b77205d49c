"""The member value of a time-bound membership: MS-ADTS 3.1.1.3.4.1.x's ``<TTL=seconds,DN>``
form (what Add-ADGroupMember -MemberTimeToLive writes), never a TTL that has already run out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jitadmin.adapters.ad.pam import MIN_TTL_S, member_value, ttl_seconds

DN = "CN=jit-pedro-tech,CN=Users,DC=pedroaviary,DC=local"
NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def test_a_ttl_member_value_wraps_the_dn() -> None:
    assert member_value(DN, 3600) == f"<TTL=3600,{DN}>"
    assert member_value(DN, None) == DN


def test_the_ttl_runs_to_the_end_and_never_below_a_minute() -> None:
    assert ttl_seconds(NOW, NOW + timedelta(minutes=35)) == 35 * 60
    assert ttl_seconds(NOW, NOW - timedelta(minutes=5)) == MIN_TTL_S
