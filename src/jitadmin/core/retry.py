"""Backoff with jitter that honours a server's Retry-After, within bounds.

A server's ``Retry-After`` is a request, not an order: a broken or hostile PSA or tenant that
answers ``Retry-After: 1e12`` must not postpone a revocation by decades (nor, unparsed, make
the worker retry at once). ``parse_retry_after`` turns the header into a finite number of
seconds (or None when it is not a usable value); the worker then holds it to
``MAX_RETRY_AFTER_S`` (``MAX_REVOKE_RETRY_AFTER_S`` for revocation work) and alerts when a
server asked for more.
"""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

# The longest any server may make the worker wait, and the longest for revocation work.
MAX_RETRY_AFTER_S = 3600.0
MAX_REVOKE_RETRY_AFTER_S = 300.0
# What a parsed value is cut to (still above every limit, so the clamp is seen and alerted):
# beyond this a value is absurd, and finite arithmetic on datetimes must stay possible.
RETRY_AFTER_CEILING_S = 86400.0


def parse_retry_after(raw: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds (a number) or an HTTP date.

    None when absent or unusable (empty, negative, NaN, not a number or date); at most
    ``RETRY_AFTER_CEILING_S`` (``inf`` and ``1e12`` included)."""
    value = (raw or "").strip()[:64]
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
    if math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_CEILING_S)


@dataclass(frozen=True)
class RetryPolicy:
    """The backoff curve (how many attempts a grant's work gets: ``core.grant.WorkerTuning``)."""

    base_s: float = 1.0
    cap_s: float = 60.0
    jitter: float = 0.25  # +/- fraction of the delay

    def delay(
        self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        exponent = min(max(attempt - 1, 0), 64)  # 2**64 s is past any cap already
        delay = min(self.cap_s, self.base_s * (2.0**exponent))
        spread = delay * self.jitter
        delay += (rng or random.Random()).uniform(-spread, spread)  # noqa: S311 - jitter, not crypto
        if retry_after_s is not None:
            # Never earlier than the server asked for.
            delay = max(delay, retry_after_s)
        return max(delay, 0.0)
