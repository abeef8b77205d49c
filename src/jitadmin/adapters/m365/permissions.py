"""The Graph application permissions jitadmin needs, and reading them from an access token.

App-only permissions are the access token's ``roles`` claim
(https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference). The
token is only read here, never validated: Graph validates it, and what we read only decides
which missing consent to name. A token issued before consent changed keeps the old roles until
it expires, so callers drop the cached token once before concluding a permission is missing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass

USER_READ_WRITE = "User.ReadWrite.All"
ROLE_MANAGEMENT = "RoleManagement.ReadWrite.Directory"
REVOKE_SESSIONS = "User.RevokeSessions.All"
DELETE_RESTORE = "User.DeleteRestore.All"
DOMAIN_READ = "Domain.Read.All"
AUTH_METHODS = "UserAuthenticationMethod.ReadWrite.All"
POLICY_READ = "Policy.Read.All"

# Each permission jitadmin asks for, with the higher ones that also satisfy it (the
# operations' Permissions tables on https://learn.microsoft.com/graph/api). Directory.ReadWrite.All
# never deletes or purges users.
SATISFIED_BY: dict[str, frozenset[str]] = {
    USER_READ_WRITE: frozenset({USER_READ_WRITE, "Directory.ReadWrite.All"}),
    ROLE_MANAGEMENT: frozenset({ROLE_MANAGEMENT}),
    REVOKE_SESSIONS: frozenset({REVOKE_SESSIONS, USER_READ_WRITE, "Directory.ReadWrite.All"}),
    DELETE_RESTORE: frozenset({DELETE_RESTORE}),
    DOMAIN_READ: frozenset(
        {DOMAIN_READ, "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
    ),
    AUTH_METHODS: frozenset({AUTH_METHODS}),
    POLICY_READ: frozenset({POLICY_READ, "Policy.ReadWrite.AuthenticationMethod"}),
}
# What every connection needs; a Temporary Access Pass needs TAP_PERMISSIONS as well.
REQUIRED: tuple[str, ...] = (
    USER_READ_WRITE,
    ROLE_MANAGEMENT,
    REVOKE_SESSIONS,
    DELETE_RESTORE,
    DOMAIN_READ,
)
TAP_PERMISSIONS: tuple[str, ...] = (AUTH_METHODS, POLICY_READ)


def token_roles(token: str) -> frozenset[str] | None:
    """The ``roles`` claim of a JWT access token; None when the token is not a readable JWT.
    A JWT without the claim has no application permission at all (an empty set)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not isinstance(claims, dict):
        return None
    roles = claims.get("roles")
    if not isinstance(roles, list):
        return frozenset()
    return frozenset(role for role in roles if isinstance(role, str))


def missing(granted: Iterable[str], needed: Iterable[str]) -> list[str]:
    """The permissions in ``needed`` that ``granted`` does not satisfy, in order."""
    have = set(granted)
    return [p for p in needed if not have & SATISFIED_BY.get(p, frozenset({p}))]


def consent_advice(names: Iterable[str], tenant: str) -> str:
    listed = ", ".join(names)
    return (
        f"missing application permission {listed} in tenant {tenant}: add it to the app "
        "registration (Microsoft Graph, Application) and grant admin consent in this tenant"
    )


@dataclass(frozen=True)
class Need:
    """What one Graph call needs: the permission to name when it is missing, and every
    permission that would do."""

    permission: str
    satisfied_by: frozenset[str]

    def met_by(self, granted: Iterable[str]) -> bool:
        return bool(set(granted) & self.satisfied_by)


def need(permission: str) -> Need:
    return Need(permission, SATISFIED_BY.get(permission, frozenset({permission})))


# DELETE /users/{id}: User.DeleteRestore.All or User.ReadWrite.All
# (https://learn.microsoft.com/graph/api/user-delete).
DELETE_USER = Need(DELETE_RESTORE, frozenset({DELETE_RESTORE, USER_READ_WRITE}))
