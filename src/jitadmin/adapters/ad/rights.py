"""What the connection test asks the DC about the bind account's rights, and how to fix each.

The DC computes them for the caller: allowedChildClassesEffective (what it may create),
allowedAttributesEffective (what it may write) and sDRightsEffective (which parts of the
security descriptor it may change). Rights on Domain Admins and on the tech accounts only last
until SDProp copies CN=AdminSDHolder's DACL over them (every 60 minutes on Windows), so the
rights that count are the ones that DACL gives.
https://learn.microsoft.com/windows/win32/adschema/a-sdrightseffective
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jitadmin.adapters.ad.domain import Domain
from jitadmin.adapters.ad.ldap import Entry, LdapSession
from jitadmin.adapters.ad.sdprop import admin_sd_holder_dn
from jitadmin.adapters.ad.security import SD_RIGHTS_DACL

TIER_0 = (
    "an account that can change Domain Admins is Tier 0, like a Domain Admin: keep it "
    "dedicated to jitadmin and guard its password as you would the domain's"
)


@dataclass
class Rights:
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def bind_account_rights(session: LdapSession, domain: Domain, user: str) -> Rights:
    rights = Rights()
    ou = session.read(domain.ou_dn, ["allowedChildClassesEffective"], what="read the OU")
    if "user" in _lowered(ou, "allowedChildClassesEffective"):
        rights.present.append(f"may create user accounts in {domain.ou_dn}")
    else:
        rights.missing.append(
            f"{user} may not create user accounts in {domain.ou_dn}: delegate 'Create, delete "
            "and manage user accounts' on it"
        )
    group = session.read(
        domain.admins_dn, ["allowedAttributesEffective"], what="read Domain Admins"
    )
    if "member" in _lowered(group, "allowedAttributesEffective"):
        rights.present.append("may change the members of Domain Admins")
    else:
        rights.missing.append(f"{user} may not change the members of Domain Admins")
    holder_dn = admin_sd_holder_dn(domain)
    holder = session.read(holder_dn, ["sDRightsEffective"], what="read CN=AdminSDHolder")
    sd_rights = (holder.number("sDRightsEffective") or 0) if holder else 0
    if sd_rights & SD_RIGHTS_DACL:
        rights.present.append(
            f"may change the DACL of {holder_dn} (sDRightsEffective), which SDProp stamps on "
            "Domain Admins and its members: the rights above survive the stamp, and revocation "
            "can turn inheritance back on for the tech account"
        )
    else:
        rights.missing.append(
            f"{user} may not change the DACL of {holder_dn}: within 60 minutes SDProp replaces "
            "the DACL of Domain Admins and of every member with that one, and rights delegated "
            "on the group or the OU stop working (the tech account could no longer be disabled "
            f"or removed from the group); make {user} a member of Domain Admins, or give it "
            f"Full Control of {holder_dn} (either way it is Tier 0)"
        )
    rights.present.append(TIER_0)
    return rights


def _lowered(entry: Entry | None, attribute: str) -> set[str]:
    return {v.decode().lower() for v in entry.values(attribute)} if entry else set()
