"""Backoff with jitter that honours a server's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 1.0
    cap_s: float = 60.0
    jitter: float = 0.25  # +/- fraction of the delay
    max_attempts: int = 6  # after this many, a revoke turns revoke_failed
    slow_interval_s: float = 300.0  # the forever-retry pace once revoke_failed

    def delay(
        self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        exponent = max(attempt - 1, 0)
        delay = min(self.cap_s, self.base_s * (2.0**exponent))
        spread = delay * self.jitter
        delay += (rng or random.Random()).uniform(-spread, spread)  # noqa: S311 - jitter, not crypto
        if retry_after_s is not None:
            # Never earlier than the server asked for.
            delay = max(delay, retry_after_s)
        return max(delay, 0.0)
