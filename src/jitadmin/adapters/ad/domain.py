"""What the AD adapter learns about a domain and how it reads an account back.

From rootDSE the naming context, from the domain object its SID, and Domain Admins as the group
whose SID is ``<domain SID>-512`` (never by name: non-English domains rename it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ldap3 import BASE
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from jitadmin.adapters.ad.account import (
    ACCOUNTDISABLE,
    DOMAIN_ADMINS_RID,
    NOT_DELEGATED,
    PROTECTED_USERS_RID,
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
    # Asked only when tokenGroups came back empty: does Domain Admins' member list it?
    listed_in_admins: bool | None = None

    @property
    def tokens_readable(self) -> bool:
        # A real account always has its primary group in tokenGroups: empty means the bind
        # account may not read it, never "in no group".
        return bool(self.group_sids)

    def admin_membership(self, domain: Domain) -> bool | None:
        """In Domain Admins (directly, nested or as primary group); None: cannot tell."""
        if self.primary_group_rid == DOMAIN_ADMINS_RID:
            return True
        if self.tokens_readable:
            return domain.admins_sid in self.group_sids
        return True if self.listed_in_admins else None

    def remaining_access(self, domain: Domain) -> list[str]:
        remaining = []
        if domain.admins_sid in self.group_sids or self.listed_in_admins:
            remaining.append("still in Domain Admins")
        if self.primary_group_rid == DOMAIN_ADMINS_RID:
            remaining.append("Domain Admins is its primary group")
        if not self.uac & ACCOUNTDISABLE:
            remaining.append("still enabled")
        return remaining

    def hardened(self, domain: Domain) -> bool:
        """In Protected Users and marked "sensitive and cannot be delegated"."""
        in_group = f"{domain.sid}-{PROTECTED_USERS_RID}" in self.group_sids
        return in_group and bool(self.uac & NOT_DELEGATED)

    def holds_admin(self, domain: Domain) -> bool:
        """In Domain Admins, enabled or not; what cannot be ruled out counts as held."""
        return self.admin_membership(domain) is not False

    def is_enabled_admin(self, domain: Domain) -> bool:
        return self.admin_membership(domain) is True and not self.uac & ACCOUNTDISABLE

    @property
    def locked_out(self) -> bool:
        return bool(self.computed_uac & UF_LOCKOUT)

    @property
    def password_expired(self) -> bool:
        return bool(self.computed_uac & UF_PASSWORD_EXPIRED)


def unverifiable(sam: str, bind_user: str) -> MisconfiguredError:
    return MisconfiguredError(
        f"cannot verify the Domain Admins membership of {sam}: its tokenGroups came back empty "
        "(a real account always has its primary group in it, so the bind account may not read "
        "it) and Domain Admins' member does not list it, which leaves a nested membership "
        f"possible; allow {bind_user} to read tokenGroups on the tech accounts"
    )


def read_state(session: LdapSession, domain: Domain, dn: str, sam: str) -> AccountState:
    entry = session.read(dn, _STATE_ATTRIBUTES, what=f"read back {sam}")
    if entry is None:
        raise TransientError(f"{sam} cannot be read back")
    group_sids = frozenset(sid_text(raw) for raw in entry.values("tokenGroups"))
    listed = None
    if not group_sids:
        found = session.search(
            domain.admins_dn,
            f"(member={escape_filter_chars(dn)})",
            ["objectSid"],
            what="look for the account in Domain Admins' member",
            scope=BASE,
        )
        listed = bool(found)
    return AccountState(
        uac=entry.number("userAccountControl") or 0,
        computed_uac=entry.number("msDS-User-Account-Control-Computed") or 0,
        primary_group_rid=entry.number("primaryGroupID"),
        admin_count=entry.number("adminCount"),
        group_sids=group_sids,
        listed_in_admins=listed,
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
