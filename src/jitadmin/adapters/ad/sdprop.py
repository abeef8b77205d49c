"""AdminSDHolder and SDProp: cleaning up after them, and rights that survive them.

Every 60 minutes the PDC emulator copies the DACL of CN=AdminSDHolder,CN=System,<domain> onto
every protected group and its (transitive) members, turns inheritance off and sets
adminCount=1. Leaving the group undoes neither: the revoke does both, and the connection test
asks the DC what the bind account may do with that template DACL.
https://learn.microsoft.com/windows-server/identity/ad-ds/plan/security-best-practices/appendix-c--protected-accounts-and-groups-in-active-directory
"""

from __future__ import annotations

from ldap3 import MODIFY_DELETE, MODIFY_REPLACE

from jitadmin.adapters.ad.account import protected_sids
from jitadmin.adapters.ad.domain import AccountState, Domain
from jitadmin.adapters.ad.ldap import NO_SUCH_ATTRIBUTE, LdapSession
from jitadmin.adapters.ad.security import (
    dacl_only,
    dacl_protected,
    with_inheritance,
)
from jitadmin.core.errors import MisconfiguredError, TransientError

SD = "nTSecurityDescriptor"
DACL = dacl_only()


def admin_sd_holder_dn(domain: Domain) -> str:
    return f"CN=AdminSDHolder,CN=System,{domain.base_dn}"


def _dacl(session: LdapSession, dn: str, sam: str) -> tuple[bytes, int]:
    """The DACL-only descriptor and the adminCount of the account."""
    entry = session.read(dn, [SD, "adminCount"], what=f"read the DACL of {sam}", controls=DACL)
    values = entry.values(SD) if entry else []
    if entry is None or not values:
        raise MisconfiguredError(
            f"cannot read the DACL of {sam} (nTSecurityDescriptor with the SD-flags control): "
            "the bind account needs Read permissions on the tech accounts"
        )
    return values[0], entry.number("adminCount") or 0


def undo_stamp(
    session: LdapSession, domain: Domain, dn: str, sam: str, state: AccountState
) -> dict[str, bool] | None:
    """Inheritance back on and adminCount gone, once no protected group is left; verified.

    Returns what was changed, or None when there was nothing to undo (or a protected group
    still holds the account, and SDProp would stamp it again anyway).
    """
    if state.group_sids & protected_sids(domain.sid):
        return None
    descriptor, admin_count = _dacl(session, dn, sam)
    protected = dacl_protected(descriptor)
    if not protected and not admin_count:
        return None
    if protected:
        # Inheritance first: while adminCount stays, a retry after a crash sees work left.
        session.modify(
            dn,
            {SD: [(MODIFY_REPLACE, [with_inheritance(descriptor)])]},
            what=f"re-enable ACL inheritance on {sam}",
            controls=DACL,
        )
    if admin_count:
        session.modify(
            dn,
            {"adminCount": [(MODIFY_DELETE, [])]},
            what=f"clear adminCount of {sam}",
            already=(NO_SUCH_ATTRIBUTE,),
        )
    descriptor, admin_count_now = _dacl(session, dn, sam)
    left = ["ACL inheritance still off"] if dacl_protected(descriptor) else []
    left += ["adminCount still set"] if admin_count_now else []
    if left:
        raise TransientError(f"undoing AdminSDHolder on {sam} not verified: {', '.join(left)}")
    return {"inheritance_restored": protected, "admin_count_cleared": bool(admin_count)}
