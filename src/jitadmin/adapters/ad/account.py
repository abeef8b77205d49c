"""The tech account as AD stores it: tags, userAccountControl bits, FILETIME, SIDs and GUIDs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ldap3.protocol.formatters.formatters import format_sid

from jitadmin.adapters.ad.ldap import Entry

# userAccountControl bits (MS-ADTS 2.2.16).
ACCOUNTDISABLE = 0x2
# "Account is sensitive and cannot be delegated": no service may act as it (Kerberos delegation).
NOT_DELEGATED = 0x100000
PASSWD_NOTREQD = 0x20
NORMAL_ACCOUNT = 0x200
DISABLED_NORMAL = NORMAL_ACCOUNT | ACCOUNTDISABLE  # 514
# Bits only msDS-User-Account-Control-Computed carries: the DC computes them from lockoutTime
# and pwdLastSet; userAccountControl never shows them.
# https://learn.microsoft.com/windows/win32/adschema/a-msds-user-account-control-computed
UF_LOCKOUT = 0x10
UF_PASSWORD_EXPIRED = 0x800000

DOMAIN_ADMINS_RID = 512
DOMAIN_USERS_RID = 513
# Protected Users (Windows Server 2012 R2 and later; Samba provisions it too): 4-hour TGTs that
# are not renewed, no NTLM, no delegation, no cached credentials.
PROTECTED_USERS_RID = 525
# Groups whose members AdminSDHolder protects (and stamps adminCount=1 on): domain RIDs and
# BUILTIN aliases. While one of them remains, adminCount must stay.
PROTECTED_DOMAIN_RIDS = (500, 502, 512, 516, 518, 519, 521, 526, 527)
PROTECTED_BUILTIN_SIDS = frozenset(f"S-1-5-32-{rid}" for rid in (544, 548, 549, 550, 551, 552))

# The tag: employeeType marks the account as jitadmin's, ``info`` names whose it is.
MANAGED_TAG = "jitadmin"
_OWNER_PREFIX = "jitadmin-managed; requester="

ACCOUNT_ATTRIBUTES = (
    "objectGUID",
    "sAMAccountName",
    "userAccountControl",
    "primaryGroupID",
    "adminCount",
    "employeeType",
    "info",
    "accountExpires",
    "displayName",
)

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def owner_tag(requester: str) -> str:
    return f"{_OWNER_PREFIX}{requester.strip().lower()}"


def display_name(full_name: str) -> str:
    return f"{full_name} (jitadmin)"


def new_account_attributes(sam: str, full_name: str, upn: str, requester: str) -> dict[str, str]:
    """Created disabled and without a password; the grant sets both, in that order."""
    return {
        "sAMAccountName": sam,
        "userPrincipalName": upn,
        "displayName": display_name(full_name),
        "description": (
            f"Managed by jitadmin: just-in-time Domain Admin account of {requester}. "
            "Disabled between grants; do not re-use."
        ),
        "employeeType": MANAGED_TAG,
        "info": owner_tag(requester),
        "userAccountControl": str(DISABLED_NORMAL),
    }


@dataclass(frozen=True)
class Account:
    """What the adapter needs to know about a tech account, read from one entry."""

    dn: str
    guid: str
    sam: str
    uac: int
    primary_group_rid: int | None
    admin_count: int | None
    managed: bool
    owner: str | None
    display_name: str = ""

    @classmethod
    def from_entry(cls, entry: Entry) -> Account:
        info = entry.text("info") or ""
        return cls(
            dn=entry.dn,
            guid=guid_text(entry.values("objectGUID")[0]),
            sam=entry.text("sAMAccountName") or "",
            uac=entry.number("userAccountControl") or 0,
            primary_group_rid=entry.number("primaryGroupID"),
            admin_count=entry.number("adminCount"),
            managed=(entry.text("employeeType") or "") == MANAGED_TAG
            and info.startswith(_OWNER_PREFIX),
            owner=info[len(_OWNER_PREFIX) :] if info.startswith(_OWNER_PREFIX) else None,
            display_name=entry.text("displayName") or "",
        )

    def belongs_to(self, requester: str) -> bool:
        return self.managed and self.owner == requester.strip().lower()

    @property
    def disabled(self) -> bool:
        return bool(self.uac & ACCOUNTDISABLE)


def enabled_uac(uac: int) -> int:
    """Enabled, a normal account that needs a password; every other bit kept."""
    return (uac & ~(ACCOUNTDISABLE | PASSWD_NOTREQD)) | NORMAL_ACCOUNT


def disabled_uac(uac: int) -> int:
    return uac | ACCOUNTDISABLE


def filetime(moment: datetime) -> int:
    """AD's accountExpires: 100-ns intervals since 1601-01-01 UTC."""
    delta = moment.astimezone(UTC) - _FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def from_filetime(value: int) -> datetime | None:
    """None for "never" (0 or the maximum value)."""
    if value <= 0 or value >= 0x7FFFFFFFFFFFFFFF:
        return None
    return _FILETIME_EPOCH + timedelta(microseconds=value // 10)


def sid_text(raw: bytes) -> str:
    return str(format_sid(raw))


def guid_text(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def guid_filter_value(guid: str) -> str:
    """A GUID as an LDAP filter value: every byte escaped, in AD's little-endian order."""
    return "".join(f"\\{byte:02x}" for byte in uuid.UUID(guid).bytes_le)


def unicode_pwd(password: str) -> bytes:
    """unicodePwd wants the password in double quotes, UTF-16-LE (MS-ADTS 3.1.1.3.1.5.1)."""
    return f'"{password}"'.encode("utf-16-le")


def protected_sids(domain_sid: str) -> frozenset[str]:
    return frozenset(f"{domain_sid}-{rid}" for rid in PROTECTED_DOMAIN_RIDS) | (
        PROTECTED_BUILTIN_SIDS
    )
