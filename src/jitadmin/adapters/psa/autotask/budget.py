"""Staying clear of Autotask's hourly request threshold.

Every integration on one Autotask database shares 10,000 requests per rolling hour; past it the
API is suspended for the whole MSP. So the adapter reads ``ThresholdInformation`` now and then
and, counting its own calls in between:

- from ``slow_ratio`` of the threshold it logs a warning (once per 10% step) and paces its
  calls, leaving room for the MSP's other integrations;
- from ``stop_ratio`` it refuses to call at all, with a ``TransientError`` carrying a
  ``Retry-After`` so the outbox backs off, long before Autotask would suspend the tenant.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from jitadmin.core.errors import TransientError

log = logging.getLogger(__name__)

__all__ = ["RequestBudget", "Usage"]


@dataclass(frozen=True)
class Usage:
    used: int
    limit: int
    timeframe_min: int

    def describe(self) -> str:
        return f"{self.used} of {self.limit} requests used in the last {self.timeframe_min} minutes"


class RequestBudget:
    """Thread-safe: one adapter (and so one budget) serves every worker thread."""

    def __init__(
        self,
        fetch: Callable[[], Usage],
        *,
        slow_ratio: float = 0.5,
        stop_ratio: float = 0.9,
        pace_s: float = 0.5,
        poll_every: int = 100,
        poll_every_busy: int = 10,
        max_age_s: float = 300.0,
        hold_off_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < slow_ratio <= stop_ratio <= 1:
            raise ValueError("need 0 < slow_ratio <= stop_ratio <= 1")
        self._fetch = fetch
        self._slow, self._stop = slow_ratio, stop_ratio
        self._pace_s = pace_s
        self._poll_every, self._poll_every_busy = poll_every, poll_every_busy
        self._max_age_s, self._hold_off_s = max_age_s, hold_off_s
        self._sleep, self._monotonic = sleep, monotonic
        self._lock = threading.Lock()
        self._usage: Usage | None = None
        self._fetched_at = 0.0
        self._since = 0  # our own requests since the last reading
        self._warned_step = 0

    @property
    def usage(self) -> Usage | None:
        """The last reading, plus our own calls since (a conservative estimate)."""
        with self._lock:
            return self._estimate()

    def _estimate(self) -> Usage | None:
        if self._usage is None:
            return None
        u = self._usage
        return Usage(u.used + self._since, u.limit, u.timeframe_min)

    def refresh(self) -> Usage:
        reading = self._fetch()
        with self._lock:
            self._usage, self._fetched_at, self._since = reading, self._monotonic(), 0
        return reading

    def _due(self) -> bool:
        with self._lock:
            if self._usage is None:
                return True
            ratio = self._ratio()
            every = self._poll_every_busy if ratio >= self._slow else self._poll_every
            age_limit = self._max_age_s / 5 if ratio >= self._slow else self._max_age_s
            return self._since >= every or self._monotonic() - self._fetched_at >= age_limit

    def _ratio(self) -> float:
        estimate = self._estimate()
        return 0.0 if estimate is None else estimate.used / max(estimate.limit, 1)

    def before_request(self) -> None:
        """Call before each counted API request: may pace, may refuse."""
        if self._due():
            self.refresh()
        with self._lock:
            ratio = self._ratio()
            estimate = self._estimate()
            if ratio < self._stop:
                self._since += 1
            step = int(ratio * 10)
            warn = ratio >= self._slow and step > self._warned_step
            if warn:
                self._warned_step = step
            elif ratio < self._slow:
                self._warned_step = 0
        if estimate is None:  # refresh() always leaves a reading; nothing to judge otherwise
            return
        if ratio >= self._stop:
            raise TransientError(
                f"Autotask API usage is at {ratio:.0%} of the hourly threshold "
                f"({estimate.describe()}); jitadmin holds back so the MSP's integrations keep "
                "working",
                retry_after_s=self._hold_off_s,
            )
        if ratio >= self._slow:
            if warn:
                log.warning(
                    "Autotask API usage at %.0f%% of the hourly threshold (%s); slowing down",
                    ratio * 100,
                    estimate.describe(),
                )
            self._sleep(self._pace_s)
