"""Refusals the AD adapter makes itself: Windows rules Samba does not enforce, and read-backs a
usable grant must pass (not locked out, password not expired)."""

from __future__ import annotations

from jitadmin.adapters.ad.domain import AccountState
from jitadmin.adapters.ad.ldap import LdapSession
from jitadmin.core.errors import MisconfiguredError, RejectedError, TransientError
from jitadmin.core.passwords import NAME_TOKEN_MIN, contains_name_token, name_tokens


def require_password_allowed(password: str, sam: str, shown_name: str) -> None:
    """Windows complexity: neither the whole sAMAccountName nor any displayName token of 3+
    characters may appear in the password.
    https://learn.microsoft.com/openspecs/windows_protocols/ms-samr/cb1f380a-0a51-4705-84cd-eea1b85953e0
    """
    tokens = set(name_tokens(shown_name))
    if len(sam) >= NAME_TOKEN_MIN:
        tokens.add(sam.lower())
    if contains_name_token(password, tokens):
        raise RejectedError(
            f"the password for {sam} does not meet Windows password complexity: it "
            f"contains its sAMAccountName or a part of 3 or more characters of its displayName "
            f"({shown_name!r}, split at , . - _ # spaces and tabs)"
        )


def require_usable(state: AccountState, sam: str, bind_user: str) -> None:
    """An enabled Domain Admin the technician cannot log on with is not a grant."""
    if state.locked_out:
        raise TransientError(
            f"{sam} is locked out (msDS-User-Account-Control-Computed has LOCKOUT) although "
            "jitadmin wrote lockoutTime 0: something keeps logging on with a wrong password"
        )
    if state.password_expired:
        raise MisconfiguredError(_expired_password(sam, bind_user))


def _expired_password(sam: str, bind_user: str) -> str:
    return (
        f"the DC expired the new password of {sam} as soon as jitadmin set it (pwdLastSet 0): "
        "the technician would have to change it at first logon and RDP with NLA fails; "
        f"grant Unexpire-Password to {bind_user} on the domain object"
    )


def require_unexpired_password(session: LdapSession, dn: str, sam: str, bind_user: str) -> None:
    """pwdLastSet 0 after a reset: the caller lacks Unexpire-Password on the domain, so the
    DC expired the new password at once (must change at first logon; RDP with NLA fails).
    https://learn.microsoft.com/openspecs/windows_protocols/ms-samr/22b79fa8-13bd-4952-a399-9d5a93b2256f
    """
    entry = session.read(dn, ["pwdLastSet"], what=f"read pwdLastSet of {sam}")
    if entry is not None and entry.number("pwdLastSet") == 0:
        raise MisconfiguredError(_expired_password(sam, bind_user))
