"""Temporary Access Pass for the per-grant account, within the tenant's TAP policy.

https://learn.microsoft.com/graph/api/authentication-post-temporaryaccesspassmethods and the
policy https://learn.microsoft.com/graph/api/resources/temporaryaccesspassauthenticationmethodconfiguration.
A TAP lets a new Global Administrator sign in (and register MFA if the tenant insists) without
a password; when the policy is off or refuses, the grant falls back to the password, visibly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitadmin.adapters.m365.client import GraphClient
from jitadmin.adapters.m365.directory import segment
from jitadmin.adapters.m365.errors import GraphBadRequestError
from jitadmin.adapters.m365.permissions import AUTH_METHODS, POLICY_READ, need
from jitadmin.core.errors import MisconfiguredError

TAP_POLICY = (
    "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass"
)
TAP = "temporary_access_pass"
PASSWORD = "password"  # noqa: S105 - the credential kind, not a secret


@dataclass(frozen=True)
class TapPolicy:
    enabled: bool
    minimum_minutes: int
    maximum_minutes: int
    usable_once: bool

    def clamp(self, minutes: int) -> int:
        return max(self.minimum_minutes, min(self.maximum_minutes, minutes))

    def describe(self) -> str:
        if not self.enabled:
            return (
                "Temporary Access Pass is disabled in this tenant's authentication methods "
                "policy: grants fall back to the password"
            )
        once = ", one-time use" if self.usable_once else ""
        return (
            f"Temporary Access Pass enabled (lifetime {self.minimum_minutes}-"
            f"{self.maximum_minutes} minutes{once})"
        )


def _minutes(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def read_policy(graph: GraphClient) -> TapPolicy:
    body = graph.get(TAP_POLICY, needs=need(POLICY_READ))
    return TapPolicy(
        enabled=str(body.get("state", "")).lower() == "enabled",
        minimum_minutes=_minutes(body.get("minimumLifetimeInMinutes"), 60),
        maximum_minutes=_minutes(body.get("maximumLifetimeInMinutes"), 480),
        usable_once=body.get("isUsableOnce") is True,
    )


@dataclass(frozen=True)
class IssuedCredential:
    """What the grant records (``account``) and, for a TAP, the pass itself."""

    account: dict[str, Any]
    temporary_access_pass: str | None = None


def issue(
    graph: GraphClient, user_id: str, now: datetime, expires_at: datetime
) -> IssuedCredential:
    """A TAP lasting the grant's remaining time, clamped to the policy; the password (with a
    notice saying why) when the tenant does not allow one."""
    try:
        policy = read_policy(graph)
    except (GraphBadRequestError, MisconfiguredError) as error:
        return _fallback(f"the TAP policy could not be read ({error.message})")
    if not policy.enabled:
        return _fallback("the tenant's Temporary Access Pass policy is disabled")
    wanted = max(1, math.ceil((expires_at - now).total_seconds() / 60))
    minutes = policy.clamp(wanted)
    try:
        created = graph.post(
            f"/users/{segment(user_id)}/authentication/temporaryAccessPassMethods",
            {"lifetimeInMinutes": minutes, "isUsableOnce": policy.usable_once},
            needs=need(AUTH_METHODS),
        )
    except (GraphBadRequestError, MisconfiguredError) as error:
        return _fallback(f"Graph refused a Temporary Access Pass ({error.message})")
    secret = created.get("temporaryAccessPass")
    if not isinstance(secret, str) or not secret:
        return _fallback("Graph answered without a Temporary Access Pass")
    lifetime = _minutes(created.get("lifetimeInMinutes"), minutes)
    return IssuedCredential(
        {
            "credential": TAP,
            "tap_lifetime_minutes": lifetime,
            "tap_usable_once": policy.usable_once,
        },
        secret,
    )


def _fallback(why: str) -> IssuedCredential:
    return IssuedCredential(
        {
            "credential": PASSWORD,
            "credential_notice": f"No Temporary Access Pass: {why}. Sign in with the password.",
        }
    )
