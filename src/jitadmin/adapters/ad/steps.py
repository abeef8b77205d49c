"""The writes of a grant and of a revocation, done the same way on every DC they go to.

Each step treats "already so" as success, so a retry after a crash at any point converges;
``record`` reports each one at once (the worker keeps them; on the other DCs nobody needs them).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

from jitadmin.adapters.ad.account import (
    DOMAIN_ADMINS_RID,
    DOMAIN_USERS_RID,
    NOT_DELEGATED,
    PROTECTED_USERS_RID,
    Account,
    disabled_uac,
    enabled_uac,
    filetime,
    unicode_pwd,
)
from jitadmin.adapters.ad.domain import Domain
from jitadmin.adapters.ad.ldap import (
    ATTRIBUTE_OR_VALUE_EXISTS,
    ENTRY_ALREADY_EXISTS,
    NO_SUCH_ATTRIBUTE,
    UNWILLING_TO_PERFORM,
    LdapSession,
)
from jitadmin.adapters.ad.pam import member_value
from jitadmin.core.clock import iso
from jitadmin.core.errors import MisconfiguredError
from jitadmin.ports import ProgressRecorder


def _ignore(_step: str, _data: dict[str, object]) -> None:
    return None


IGNORE: ProgressRecorder = _ignore


def set_password(session: LdapSession, account: Account, password: str) -> None:
    sam, dn = account.sam, account.dn
    session.modify(
        dn,
        {"unicodePwd": [(MODIFY_REPLACE, [unicode_pwd(password)])]},
        what=f"set the password of {sam}",
    )
    # An admin reset does not unlock on Windows, and a re-used tech account is a typical
    # lockout victim (a saved old password retried somewhere).
    session.modify(
        dn, {"lockoutTime": [(MODIFY_REPLACE, ["0"])]}, what=f"unlock {sam} (lockoutTime 0)"
    )


def harden(
    session: LdapSession, domain: Domain, account: Account, record: ProgressRecorder = IGNORE
) -> Account:
    """Protected Users and "sensitive and cannot be delegated", before the account is enabled.

    Both stay after the revocation: harmless on a disabled account, and already in place for
    the next grant.
    """
    sam, dn = account.sam, account.dn
    groups = session.search(
        domain.base_dn,
        f"(&(objectClass=group)(objectSid={domain.sid}-{PROTECTED_USERS_RID}))",
        ["objectSid"],
        what="find Protected Users",
    )
    if not groups:
        raise MisconfiguredError(
            f"no Protected Users group (SID {domain.sid}-{PROTECTED_USERS_RID}): it exists from "
            "the Windows Server 2012 R2 domain functional level on; turn protected_users off or "
            "raise the level"
        )
    session.modify(
        groups[0].dn,
        {"member": [(MODIFY_ADD, [dn])]},
        what=f"add {sam} to Protected Users",
        already=(ENTRY_ALREADY_EXISTS, ATTRIBUTE_OR_VALUE_EXISTS),
    )
    uac = account.uac | NOT_DELEGATED
    if uac != account.uac:
        session.modify(
            dn,
            {"userAccountControl": [(MODIFY_REPLACE, [str(uac)])]},
            what=f"mark {sam} sensitive and not delegable",
        )
    record("hardened", {"protected_users_dn": groups[0].dn})
    return replace(account, uac=uac)


def enable_until(
    session: LdapSession,
    domain: Domain,
    account: Account,
    ends: datetime,
    record: ProgressRecorder = IGNORE,
    member_ttl_s: int | None = None,
) -> None:
    """accountExpires, then enable, then Domain Admins: never enabled without an expiry.

    ``member_ttl_s``: a time-bound membership (see ``pam``), which the DCs end themselves."""
    sam, dn = account.sam, account.dn
    session.modify(
        dn,
        {"accountExpires": [(MODIFY_REPLACE, [str(filetime(ends))])]},
        what=f"set accountExpires of {sam}",
    )
    record("expiry_set", {"account_expires": iso(ends)})
    if enabled_uac(account.uac) != account.uac:
        session.modify(
            dn,
            {"userAccountControl": [(MODIFY_REPLACE, [str(enabled_uac(account.uac))])]},
            what=f"enable {sam}",
        )
    record("enabled", {})
    session.modify(
        domain.admins_dn,
        {"member": [(MODIFY_ADD, [member_value(dn, member_ttl_s)])]},
        what=f"add {sam} to Domain Admins",
        already=(ENTRY_ALREADY_EXISTS, ATTRIBUTE_OR_VALUE_EXISTS),
    )
    timed = {"ttl_seconds": member_ttl_s} if member_ttl_s is not None else {}
    record("group_added", {"group_dn": domain.admins_dn, **timed})


def take_away(
    session: LdapSession,
    domain: Domain,
    account: Account,
    password: str,
    record: ProgressRecorder = IGNORE,
) -> None:
    """Out of Domain Admins, disabled, a password nobody knows."""
    sam, dn = account.sam, account.dn
    if account.primary_group_rid == DOMAIN_ADMINS_RID:
        # Removing `member` never takes away a primary group: move it back first.
        restore_primary_group(session, domain, account)
    session.modify(
        domain.admins_dn,
        {"member": [(MODIFY_DELETE, [dn])]},
        what=f"remove {sam} from Domain Admins",
        # Not a member: Samba and Windows answer unwillingToPerform. Read back afterwards.
        already=(UNWILLING_TO_PERFORM, NO_SUCH_ATTRIBUTE),
    )
    record("group_removed", {})
    if not account.disabled:
        session.modify(
            dn,
            {"userAccountControl": [(MODIFY_REPLACE, [str(disabled_uac(account.uac))])]},
            what=f"disable {sam}",
        )
    record("disabled", {})
    session.modify(
        dn,
        {"unicodePwd": [(MODIFY_REPLACE, [unicode_pwd(password)])]},
        what=f"reset the password of {sam}",
    )
    record("password_reset", {})


def restore_primary_group(session: LdapSession, domain: Domain, account: Account) -> None:
    users = session.search(
        domain.base_dn,
        f"(&(objectClass=group)(objectSid={domain.sid}-{DOMAIN_USERS_RID}))",
        ["objectSid"],
        what="find Domain Users",
    )
    if not users:
        raise MisconfiguredError("no Domain Users group (RID 513) to make primary")
    session.modify(
        users[0].dn,
        {"member": [(MODIFY_ADD, [account.dn])]},
        what=f"add {account.sam} to Domain Users",
        already=(ENTRY_ALREADY_EXISTS, ATTRIBUTE_OR_VALUE_EXISTS),
    )
    session.modify(
        account.dn,
        {"primaryGroupID": [(MODIFY_REPLACE, [str(DOMAIN_USERS_RID)])]},
        what=f"make Domain Users the primary group of {account.sam}",
    )
