"""What the AD adapter learns about a domain and how it reads an account back.

From rootDSE the naming context, from the domain object its SID, and Domain Admins as the group
whose SID is ``<domain SID>-512`` (never by name: non-English domains rename it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ldap3.utils.dn import parse_dn

from jitadmin.adapters.ad.account import (
    ACCOUNTDISABLE,
    DOMAIN_ADMINS_RID,
    UF_LOCKOUT,
    UF_PASSWORD_EXPIRED,
    sid_text,
)
from jitadmin.adapters.ad.ldap import LdapSession
from jitadmin.core.errors import MisconfiguredError, TransientError

_STATE_ATTRIBUTES = (
    "userAccountControl",
    "msDS-User-Account-Control-Computed",
    "primaryGroupID",
    "adminCount",
    "tokenGroups",
)


@dataclass(frozen=True)
class Domain:
    base_dn: str
    dns_name: str
    sid: str
    admins_dn: str
    ou_dn: str

    @property
    def admins_sid(self) -> str:
        return f"{self.sid}-{DOMAIN_ADMINS_RID}"


def discover(session: LdapSession, base_dn: str | None, ou: str | None) -> Domain:
    """Base DN, domain SID, Domain Admins by its RID (names differ by language), the OU."""
    base = base_dn
    if not base:
        root = session.read("", ["defaultNamingContext"], what="read the rootDSE")
        base = root.text("defaultNamingContext") if root else None
        if not base:
            raise MisconfiguredError("the DC did not name its domain; set base_dn")
    entry = session.read(base, ["objectSid"], what=f"read the domain object {base}")
    if entry is None or not entry.values("objectSid"):
        raise MisconfiguredError(f"{base} is not a domain this DC holds; check base_dn")
    sid = sid_text(entry.values("objectSid")[0])
    admins = session.search(
        base,
        f"(&(objectClass=group)(objectSid={sid}-{DOMAIN_ADMINS_RID}))",
        ["objectSid"],
        what="find Domain Admins",
    )
    if len(admins) != 1:
        raise MisconfiguredError(f"no Domain Admins group (SID {sid}-512) under {base}")
    ou_dn = _ou_dn(ou, base)
    if session.read(ou_dn, ["objectClass"], what=f"read the OU {ou_dn}") is None:
        raise MisconfiguredError(f"the OU {ou_dn} does not exist")
    return Domain(base, _dns_name(base), sid, admins[0].dn, ou_dn)


@dataclass(frozen=True)
class AccountState:
    """A read-back of an account: what decides whether access exists."""

    uac: int
    computed_uac: int  # msDS-User-Account-Control-Computed: lockout and password expiry
    primary_group_rid: int | None
    admin_count: int | None
    group_sids: frozenset[str]  # tokenGroups: transitive, primary group included

    def remaining_access(self, domain: Domain) -> list[str]:
        remaining = []
        if domain.admins_sid in self.group_sids:
            remaining.append("still in Domain Admins")
        if self.primary_group_rid == DOMAIN_ADMINS_RID:
            remaining.append("Domain Admins is its primary group")
        if not self.uac & ACCOUNTDISABLE:
            remaining.append("still enabled")
        return remaining

    def holds_admin(self, domain: Domain) -> bool:
        """In Domain Admins (directly, nested or as primary group), enabled or not."""
        return domain.admins_sid in self.group_sids or self.primary_group_rid == DOMAIN_ADMINS_RID

    def is_enabled_admin(self, domain: Domain) -> bool:
        return domain.admins_sid in self.group_sids and not self.uac & ACCOUNTDISABLE

    @property
    def locked_out(self) -> bool:
        return bool(self.computed_uac & UF_LOCKOUT)

    @property
    def password_expired(self) -> bool:
        return bool(self.computed_uac & UF_PASSWORD_EXPIRED)


def read_state(session: LdapSession, dn: str, sam: str) -> AccountState:
    entry = session.read(dn, _STATE_ATTRIBUTES, what=f"read back {sam}")
    if entry is None:
        raise TransientError(f"{sam} cannot be read back")
    return AccountState(
        uac=entry.number("userAccountControl") or 0,
        computed_uac=entry.number("msDS-User-Account-Control-Computed") or 0,
        primary_group_rid=entry.number("primaryGroupID"),
        admin_count=entry.number("adminCount"),
        group_sids=frozenset(sid_text(raw) for raw in entry.values("tokenGroups")),
    )


def _ou_dn(ou: str | None, base: str) -> str:
    """The OU setting may be relative to the base DN ("OU=JIT") or a full DN."""
    if not ou:
        return f"CN=Users,{base}"
    ou = ou.strip()
    return ou if ou.lower().endswith(base.lower()) else f"{ou},{base}"


def _dns_name(base_dn: str) -> str:
    labels = [value for attr, value, _ in parse_dn(base_dn) if attr.upper() == "DC"]
    if not labels:
        raise MisconfiguredError(f"cannot derive a DNS domain from {base_dn}")
    return ".".join(labels).lower()
