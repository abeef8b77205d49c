from __future__ import annotations

import random

import pytest

from jitadmin.adapters.secretbox import AesGcmSecretBox, SecretBoxError
from jitadmin.core.retry import RetryPolicy

KEY = "k" * 40


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_s=1, cap_s=10, jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(base_s=4, cap_s=60, jitter=0.25)
    rng = random.Random(7)
    delays = [policy.delay(1, rng=rng) for _ in range(500)]
    assert min(delays) >= 3 and max(delays) <= 5
    assert len(set(delays)) > 100


def test_retry_after_is_never_undercut() -> None:
    policy = RetryPolicy(base_s=1, cap_s=60, jitter=0.25)
    assert all(policy.delay(1, retry_after_s=30) >= 30 for _ in range(100))


def test_seal_and_open_round_trip_without_plaintext() -> None:
    box = AesGcmSecretBox(KEY)
    sealed = box.seal("Hunter2-secret!", "grant:1:password")
    assert "Hunter2" not in sealed
    assert box.open(sealed, "grant:1:password") == "Hunter2-secret!"
    assert box.seal("same", "c") != box.seal("same", "c")  # fresh nonce each time


def test_a_ciphertext_is_bound_to_its_row() -> None:
    box = AesGcmSecretBox(KEY)
    sealed = box.seal("secret", "grant:1:password")
    with pytest.raises(SecretBoxError):
        box.open(sealed, "grant:2:password")


def test_tampering_is_detected() -> None:
    box = AesGcmSecretBox(KEY)
    sealed = box.seal("secret", "c")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretBoxError):
        box.open(flipped, "c")


def test_rotation_keeps_old_values_readable() -> None:
    old = AesGcmSecretBox(KEY)
    sealed = old.seal("secret", "c")
    new = AesGcmSecretBox("n" * 40, previous_keys=(KEY,))
    assert new.open(sealed, "c") == "secret"
    assert new.needs_rotation(sealed) and not new.needs_rotation(new.seal("x", "c"))
    with pytest.raises(SecretBoxError, match="unknown key"):
        AesGcmSecretBox("n" * 40).open(sealed, "c")


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        AesGcmSecretBox("short")
