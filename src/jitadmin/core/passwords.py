"""One-time passwords: CSPRNG, no look-alike characters, valid for Entra and AD complexity."""

from __future__ import annotations

import secrets

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


def generate_password(length: int = DEFAULT_LENGTH) -> str:
    """A password with every character class present, drawn from ``secrets``."""
    if length < MIN_LENGTH:
        raise ValueError(f"password length must be at least {MIN_LENGTH}")
    chars = [secrets.choice(cls) for cls in CLASSES]
    alphabet = "".join(CLASSES)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def character_classes(password: str) -> int:
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def check_password(password: str, *, account_name: str | None = None) -> str:
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
    return password
