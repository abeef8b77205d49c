"""Clocks: the real one, and a settable one for tests and simulations."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """Time moves only when told; listeners (e.g. a worker's wake-up) hear every move."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            now = self._now
        for listener in list(self._listeners):
            listener()
        return now

    def on_advance(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
