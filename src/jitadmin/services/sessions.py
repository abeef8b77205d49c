"""Web sign-in: argon2id passwords, server-side sessions, CSRF tokens, sign-out.

The browser holds only a random session id; the database holds its HMAC (a key derived from
the secret key, so a row written into the database opens nothing), the user, the
CSRF token and the times. Sign-in, failed sign-in and sign-out are audited; failures are
throttled first (``signin_limits``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from jitadmin.core import fields
from jitadmin.core.errors import AccountDisabledError, SignInFailedError, SignInThrottledError
from jitadmin.core.events import AuditEvent
from jitadmin.ports import UnitOfWork, User, WebSession
from jitadmin.services import second_factor, signin_limits
from jitadmin.services.context import ServiceContext

_hasher = PasswordHasher()
MAX_USERNAME = 200
MAX_PASSWORD = 1024  # argon2 hashes anything; a cap stops megabyte "passwords" costing CPU


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True)
class SignedIn:
    session_id: str  # the cookie value: handed to the browser, never stored or logged
    csrf_token: str
    user: User
    expires_at: datetime


@dataclass(frozen=True)
class ActiveSession:
    user: User
    csrf_token: str
    expires_at: datetime  # whichever comes first: the idle end or the absolute end
    # Signed in with a password alone while the role needs a second factor: the console
    # shows nothing but the enrolment page until one is set up.
    must_enrol: bool = False


SESSION_PURPOSE = "web-session"


def session_hash(ctx: ServiceContext, session_id: str) -> str:
    # The id is 256 random bits, so a fast keyed hash suffices: a stolen table yields no
    # cookie, and without the secret key no row can be written that a cookie would match.
    return ctx.box.digests(SESSION_PURPOSE, session_id)[0]


def _stored(ctx: ServiceContext, uow: UnitOfWork, session_id: str) -> tuple[str, WebSession | None]:
    """The stored key and session behind a cookie (hashed under the current or a previous key)."""
    digests = ctx.box.digests(SESSION_PURPOSE, session_id)
    for key in digests:
        if (found := uow.web_sessions.get(key)) is not None:
            return key, found
    return digests[0], None


def credential_of(session_id: str) -> str:
    """How the audit log names a web session: a short one-way handle, never the cookie, and
    not the stored hash either (the handle cannot be turned into a row to steal)."""
    digest = hashlib.sha256(b"jitadmin-session-handle:" + session_id.encode()).hexdigest()
    return f"session:{digest[:16]}"


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def _password_ok(stored: str | None, password: str) -> bool:
    try:
        # Unknown users cost one argon2 verify too, so timing does not reveal who exists.
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def sign_in(
    ctx: ServiceContext, username: str, password: str, policy: SessionPolicy, *,
    client: str = "", replaces: str = "", code: str = "",
) -> SignedIn:  # fmt: skip
    """A new session after the password and, when the user has enrolled one, the second factor
    (a TOTP code or an unused recovery code, ``code``), each good once."""
    name = username.strip()[:MAX_USERNAME]
    if fields.problems("username", name, fields.LIMITS["username"]):
        name = ""  # control characters (NUL...): junk, counted as a failure without a name
    client = client[: signin_limits.MAX_CLIENT]
    # The lockout first: a refused attempt is neither checked nor written down, junk or not.
    if (wait := signin_limits.locked_for(ctx, name, client)) is not None:
        raise SignInThrottledError(wait)
    if not name or not password or len(password) > MAX_PASSWORD:
        _failed(ctx, name, client, "empty or oversized input")
    with ctx.uow() as uow:
        stored = uow.web_sessions.password_hash(name)
        user = uow.users.get(name)
    if user is None or not _password_ok(stored, password):
        _failed(ctx, name, client, "unknown user" if user is None else "wrong password")
    if user.disabled:
        # Counted and audited like a failure (so it cannot flood the trail), but said plainly:
        # whoever typed the right password learns only what its owner would be told.
        _failed(ctx, name, client, "account disabled", AccountDisabledError())
    with ctx.uow() as uow:
        # Spent in its own transaction: a code or recovery code is good once, whatever follows.
        method = second_factor.check(ctx, uow, name, code[:64])
        needed = method is None and _enrolled(uow, name)
        if method is not None:
            uow.commit()
    if needed:
        _failed(ctx, name, client, "wrong, reused or missing second factor")
    with ctx.uow() as uow:
        signed = open_session(
            ctx, uow, user, policy, replaces=replaces,
            audit={"client": client, "via": "web", "second_factor": method},
        )  # fmt: skip
        uow.commit()
    return signed


def open_session(
    ctx: ServiceContext, uow: UnitOfWork, user: User, policy: SessionPolicy, *,
    replaces: str, audit: dict[str, object],
) -> SignedIn:  # fmt: skip
    """A new web session for ``user`` and its ``auth.signed_in`` event, in ``uow`` (the caller
    commits, together with whatever else its sign-in changed)."""
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = ctx.clock.now()
    expires = now + policy.absolute
    uow.web_sessions.delete_expired(now, now - policy.idle)
    if replaces:
        # Rotation: whatever session the browser came with ends here (no fixation).
        uow.web_sessions.delete(_stored(ctx, uow, replaces)[0])
    uow.web_sessions.add(
        WebSession(session_hash(ctx, session_id), user.username, csrf, now, now, expires)
    )
    uow.audit.append(
        AuditEvent(
            "auth.signed_in", user.username, now, data=audit,
            credential=credential_of(session_id),
        )
    )  # fmt: skip
    return SignedIn(session_id, csrf, user, min(expires, now + policy.idle))


def _failed(
    ctx: ServiceContext, username: str, client: str, why: str,
    error: SignInFailedError | None = None,
) -> NoReturn:  # fmt: skip
    if (wait := signin_limits.record_failure(ctx, username, client, why)) is not None:
        raise SignInThrottledError(wait)
    raise error or SignInFailedError()


def resolve(
    ctx: ServiceContext, session_id: str, policy: SessionPolicy, *, touch: bool = True
) -> ActiveSession | None:
    """The session behind a cookie, or None when unknown or expired (expired ones are deleted).

    ``touch=False`` is for background polling: an open tab refreshing a status must not keep
    an unattended session alive.
    """
    if not session_id or len(session_id) > 128:
        return None
    now = ctx.clock.now()
    with ctx.uow() as uow:
        key, found = _stored(ctx, uow, session_id)
        if found is None:
            return None
        user = uow.users.get(found.username)
        # A disabled user's session ends on its next request (disabling also deletes them).
        ended = now >= found.expires_at or now - found.last_seen_at >= policy.idle
        if user is None or user.disabled or ended:
            uow.web_sessions.delete(key)
            uow.commit()
            return None
        # An OIDC user's second factor is the identity provider's (its amr had mfa).
        must_enrol = (
            second_factor.required_for(ctx, user)
            and not _enrolled(uow, user.username)
            and uow.users.external_identity(user.username) is None
        )
        if touch:
            uow.web_sessions.touch(key, now)
            uow.commit()
        seen = now if touch else found.last_seen_at
    ends = min(found.expires_at, seen + policy.idle)
    return ActiveSession(user, found.csrf_token, ends, must_enrol)


def _enrolled(uow: UnitOfWork, username: str) -> bool:
    factor = uow.second_factors.get(username)
    return factor is not None and factor.confirmed_at is not None


def sign_out(ctx: ServiceContext, session_id: str, *, client: str = "") -> None:
    with ctx.uow() as uow:
        key, found = _stored(ctx, uow, session_id)
        if found is None:
            return
        uow.web_sessions.delete(key)
        uow.audit.append(
            AuditEvent(
                "auth.signed_out",
                found.username,
                ctx.clock.now(),
                data={"client": client},
                credential=credential_of(session_id),
            )
        )
        uow.commit()


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
