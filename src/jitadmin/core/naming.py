"""Account names: derived from the requester, stable and within vendor limits."""

from __future__ import annotations

import hashlib
import re

SAM_MAX = 20
# Characters AD forbids in sAMAccountName, plus anything outside plain ASCII.
_SAM_FORBIDDEN = re.compile(r"[^A-Za-z0-9._-]")
# Entra allows A-Z a-z 0-9 ' . - _ ! # ^ ~ in the alias; we keep the quiet subset.
_ALIAS_FORBIDDEN = re.compile(r"[^a-z0-9._-]")
MAIL_NICKNAME_MAX = 64


def requester_local_part(requester: str) -> str:
    """``Example.User@msp.example`` -> ``example.user``; never empty."""
    local = requester.split("@", 1)[0].strip().lower()
    # Entra refuses ".." in an alias: runs of dots collapse to one.
    local = re.sub(r"\.{2,}", ".", _ALIAS_FORBIDDEN.sub("", local)).strip(".-_")
    return local or "tech"


def _short_hash(*parts: str, length: int = 6) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def ad_account_name(requester: str, domain_prefix: str) -> str:
    """Rewst-style ``<local>-<prefix>``; the full name, used for CN, displayName and UPN."""
    prefix = _SAM_FORBIDDEN.sub("", domain_prefix.lower()) or "domain"
    return f"{requester_local_part(requester)}-{prefix}"


def ad_sam_account_name(requester: str, domain_prefix: str) -> str:
    """The sAMAccountName: the full name when it fits 20 characters, else cut + stable hash."""
    full = ad_account_name(requester, domain_prefix)
    if len(full) <= SAM_MAX:
        return full
    head = requester_local_part(requester)[: SAM_MAX - 7].rstrip(".-_") or "tech"
    return f"{head}-{_short_hash(requester.lower(), domain_prefix.lower())}"


def m365_mail_nickname(requester: str, grant_id: str) -> str:
    """``jit-<local>-<grant suffix>``: per grant, so a lingering account never blocks the next."""
    suffix = grant_id.replace("-", "")[:6]
    room = MAIL_NICKNAME_MAX - len("jit--") - len(suffix)
    return f"jit-{requester_local_part(requester)[:room]}-{suffix}"


def m365_user_principal_name(requester: str, grant_id: str, domain: str) -> str:
    return f"{m365_mail_nickname(requester, grant_id)}@{domain.lower()}"


# An Entra tenant is named by its GUID or one of its domain names, nothing else: the value
# becomes a path segment of the authority URL, so "../x", "x/y" or "?" must never pass.
_TENANT_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_DOMAIN_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_TENANT_DOMAIN = re.compile(rf"({_DOMAIN_LABEL}\.)+[A-Za-z]{{2,63}}")
TENANT_ID_RULE = "must be the tenant's GUID or a domain name (contoso.onmicrosoft.com)"


def is_tenant_id(value: str) -> bool:
    return len(value) <= 253 and bool(
        _TENANT_GUID.fullmatch(value) or _TENANT_DOMAIN.fullmatch(value)
    )


def normalised(value: object) -> str:
    """A setting as compared across saves: trimmed, lower case, no spaces around DN commas."""
    return re.sub(r"\s*,\s*", ",", str(value or "").strip().lower())
