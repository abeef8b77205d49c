"""core/totp.py against the test vectors of RFC 6238 appendix B and RFC 4226 appendix D."""

from __future__ import annotations

import base64

import pytest

from jitadmin.core import totp

# RFC 4226 appendix D: the secret "12345678901234567890", counters 0..9.
HOTP_VECTORS = ["755224", "287082", "359152", "969429", "338314",
                "254676", "287922", "162583", "399871", "520489"]  # fmt: skip
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


def test_hotp_matches_rfc_4226() -> None:
    key = b"12345678901234567890"
    assert [totp.hotp(key, counter) for counter in range(10)] == HOTP_VECTORS


@pytest.mark.parametrize(
    ("unix_seconds", "eight_digits"),
    [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
     (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")],
)  # fmt: skip
def test_totp_matches_rfc_6238_sha1(unix_seconds: int, eight_digits: str) -> None:
    key = b"12345678901234567890"
    assert totp.hotp(key, totp.step_at(unix_seconds), digits=8) == eight_digits
    assert totp.code_at(RFC_SECRET, unix_seconds) == eight_digits[-6:]


def test_a_code_matches_its_step_and_one_step_either_side_only() -> None:
    secret, now = totp.new_secret(), 1_800_000_000.0
    code = totp.code_at(secret, now)
    assert totp.matching_step(secret, code, now) == totp.step_at(now)
    assert totp.matching_step(secret, code, now + 30) == totp.step_at(now)
    assert totp.matching_step(secret, code, now + 61) is None
    assert totp.matching_step(secret, "12345", now) is None
    assert totp.matching_step(secret, "abcdef", now) is None


def test_the_otpauth_uri_carries_the_secret_issuer_and_account() -> None:
    uri = totp.otpauth_uri("JBSWY3DPEHPK3PXP", "admin@msp.example")
    assert uri.startswith("otpauth://totp/jitadmin%3Aadmin@msp.example?secret=JBSWY3DPEHPK3PXP")
    assert "issuer=jitadmin" in uri and "digits=6" in uri and "period=30" in uri


def test_recovery_codes_are_random_and_compare_loosely() -> None:
    codes = {totp.new_recovery_code() for _ in range(50)}
    assert len(codes) == 50
    code = next(iter(codes))
    assert totp.normal_recovery_code(f"  {code.upper()} ") == code.replace("-", "")
