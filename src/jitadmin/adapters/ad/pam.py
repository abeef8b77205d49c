"""Time-bound Domain Admins membership, where the forest allows it.

With the Privileged Access Management optional feature (MS-ADTS 3.1.1.9.2, feature GUID
ec43e873-cce8-4640-b4ab-07ffe4ab5bcd; forest functional level 2016 or later) a link value may
carry an expiry: the member is written as ``<TTL=seconds,DN>``, every DC stops returning it when
the time is up, and the KDC caps the tickets it issues to the time left. So the membership ends
on the domain's own clock even if jitadmin is gone. A forest without the feature (Samba has
none) gets a plain membership, which jitadmin removes at the end (and ``accountExpires``
backs up): the connection test and the grant's timeline say so.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ldap3 import MODIFY_ADD

from jitadmin.adapters.ad.ldap import LdapSession
from jitadmin.ports import ProgressRecorder

PAM_FEATURE = "Privileged Access Management Feature"
UNAVAILABLE = (
    "time-bound membership is not available: the forest has no Privileged Access Management "
    "feature (forest level Windows Server 2016, then Enable-ADOptionalFeature "
    f"'{PAM_FEATURE}'); Domain Admins membership is plain and jitadmin removes it at the end"
)
AVAILABLE = (
    "time-bound membership: the forest has the Privileged Access Management feature; "
    "Domain Admins membership ends on the DCs' own clock"
)
MIN_TTL_S = 60  # a grant always lasts minutes; never write a TTL that has already run out


def pam_enabled(session: LdapSession) -> bool:
    """Whether the forest lists the feature among its enabled ones (``msDS-EnabledFeature`` of
    the Partitions container, which holds the forest-wide list)."""
    root = session.read("", ["configurationNamingContext"], what="read the rootDSE")
    config = root.text("configurationNamingContext") if root else None
    if not config:
        return False
    partitions = session.read(
        f"CN=Partitions,{config}",
        ["msDS-EnabledFeature"],
        what="read the forest's enabled optional features",
    )
    if partitions is None:
        return False
    wanted = f"cn={PAM_FEATURE.lower()},"
    return any(
        value.decode("utf-8", "replace").lower().startswith(wanted)
        for value in partitions.values("msDS-EnabledFeature")
    )


def ttl_seconds(now: datetime, ends: datetime) -> int:
    return max(int((ends - now).total_seconds()), MIN_TTL_S)


def member_value(dn: str, ttl_s: int | None) -> str:
    """The ``member`` value to add: with a TTL in the feature's ``<TTL=seconds,DN>`` form."""
    return dn if ttl_s is None else f"<TTL={ttl_s},{dn}>"


def membership_ttl(
    session: LdapSession, wanted: bool, now: datetime, ends: datetime, record: ProgressRecorder
) -> int | None:
    """The TTL to give the Domain Admins membership, or None for a plain one; a wanted but
    unavailable time-bound membership is recorded on the grant's timeline, not hidden."""
    if not wanted:
        return None
    if pam_enabled(session):
        return ttl_seconds(now, ends)
    record("time_bound_unavailable", {"reason": UNAVAILABLE})
    return None


def move_membership_expiry(
    session: LdapSession, admins_dn: str, dn: str, sam: str, ends: datetime
) -> None:
    """Adding the member again with a new TTL moves its expiry (how the feature updates it)."""
    session.modify(
        admins_dn,
        {"member": [(MODIFY_ADD, [member_value(dn, ttl_seconds(datetime.now(UTC), ends))])]},
        what=f"move the Domain Admins expiry of {sam}",
    )


def time_bound_finding(session: LdapSession) -> str:
    return AVAILABLE if pam_enabled(session) else f"note: {UNAVAILABLE}"
