"""One-time passwords: CSPRNG, no look-alike characters, valid for Entra and AD complexity."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from jitadmin.core.errors import ValidationFailedError

# No 0/O/o, 1/l/I, 5/S, 2/Z: a technician may have to type it from a screen.
LOWER = "abcdefghijkmnpqrstuvwxyz"
UPPER = "ABCDEFGHJKLMNPQRTUVWXY"
DIGITS = "346789"
# Symbols both Entra and AD accept and that survive shells, URLs and copy-paste.
SYMBOLS = "!#$%*+-=?@^_~"
CLASSES = (LOWER, UPPER, DIGITS, SYMBOLS)
DEFAULT_LENGTH = 20
MIN_LENGTH = 16
MAX_LENGTH = 128
# Windows complexity splits the account's displayName at these and refuses a password that
# contains any part of 3 or more characters (case-insensitive).
# https://learn.microsoft.com/windows/win32/secmgmt/strong-password-enforcement-and-passfilt-dll
_NAME_DELIMITERS = re.compile(r"[,.\-_#\s]+")
NAME_TOKEN_MIN = 3
NAME_PARTS_RULE = (
    "must not contain any part of 3 or more characters of the account's names (Windows "
    "complexity splits the display name at , . - _ # spaces and tabs)"
)


def name_tokens(*names: str) -> frozenset[str]:
    """The lower-cased parts of 3+ characters Windows checks a password against."""
    return frozenset(
        token.lower()
        for name in names
        for token in _NAME_DELIMITERS.split(name)
        if len(token) >= NAME_TOKEN_MIN
    )


def contains_name_token(password: str, tokens: Iterable[str]) -> bool:
    lowered = password.lower()
    return any(token in lowered for token in tokens)


def generate_password(length: int = DEFAULT_LENGTH, *, avoid: Iterable[str] = ()) -> str:
    """A password with every character class present, drawn from ``secrets``, containing none
    of ``avoid`` (see :func:`name_tokens`): drawn again in the rare case it does."""
    if length < MIN_LENGTH:
        raise ValueError(f"password length must be at least {MIN_LENGTH}")
    tokens = frozenset(t.lower() for t in avoid if len(t) >= NAME_TOKEN_MIN)
    while True:
        chars = [secrets.choice(cls) for cls in CLASSES]
        alphabet = "".join(CLASSES)
        chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        password = "".join(chars)
        if not contains_name_token(password, tokens):
            return password


def character_classes(password: str) -> int:
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def check_password(
    password: str, *, account_name: str | None = None, names: Iterable[str] = ()
) -> str:
    """Validate a requester-chosen password; the message never echoes the password."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValidationFailedError.single(
            "password", f"must be {MIN_LENGTH} to {MAX_LENGTH} characters long"
        )
    if not password.isascii() or not password.isprintable():
        raise ValidationFailedError.single("password", "must be printable ASCII")
    if character_classes(password) < 3:
        raise ValidationFailedError.single(
            "password", "must mix at least three of lowercase, uppercase, digits and symbols"
        )
    if account_name and len(account_name) >= 3 and account_name.lower() in password.lower():
        raise ValidationFailedError.single("password", "must not contain the account name")
    if contains_name_token(password, name_tokens(*names)):
        raise ValidationFailedError.single("password", NAME_PARTS_RULE)
    return password
