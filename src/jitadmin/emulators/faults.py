"""Fault switches and a request journal shared by every emulator.

The switch names are a public interface (test scripts outside the repository set them).

``PUT {admin_url}/faults`` with any of ``latency_ms``, ``error_status``, ``error_rate``,
``retry_after_s``, ``outage``, ``replication_delay_ms`` and, for Graph, the replication lags
counted in requests (``deleted_lag_requests``, ``assignment_lag_requests``,
``removed_lag_requests``, ``privileged_lag_requests``: on by default, 0 switches one off);
``DELETE {admin_url}/faults`` resets to those defaults.
``retry_after`` sends its text as the ``Retry-After`` header as it is (``"1e12"``, ``"nan"``,
a date), standing in for a broken or hostile server; it wins over ``retry_after_s``.
Any change releases the requests that the previous ``latency_ms`` is holding.
``GET {admin_url}/requests`` lists every vendor request seen, including those still in flight,
so a test can wait for "the worker is inside call X" without sleeping.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

# How often a held request looks whether its faults were changed or cleared.
_RELEASE_CHECK_S = 0.05


class FaultSettings(BaseModel):
    latency_ms: int = Field(default=0, ge=0, le=600_000)
    error_status: int | None = Field(default=None, ge=400, le=599)
    error_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    retry_after_s: int | None = Field(default=None, ge=0, le=3600)
    retry_after: str | None = Field(default=None, pattern=r"^[\x20-\x7e]{1,64}$")
    outage: bool = False
    replication_delay_ms: int = Field(default=0, ge=0, le=600_000)
    # Graph's eventual consistency, on by default because real Entra ID always has it: counted
    # in later Graph requests to the same tenant (no clock, so tests stay fast and exact).
    # A just-deleted user is missing from /directory/deletedItems (404 on read and purge)...
    deleted_lag_requests: int = Field(default=4, ge=0, le=10_000)
    # ...a just-created role assignment is missing from GET by id, lists and DELETE...
    assignment_lag_requests: int = Field(default=3, ge=0, le=10_000)
    # ...a just-removed one is still listed...
    removed_lag_requests: int = Field(default=1, ge=0, le=10_000)
    # ...and its principal still counts as privileged (403 on delete), for longer.
    privileged_lag_requests: int = Field(default=6, ge=0, le=10_000)
    # Limit an injected error to the next N matching requests (None = until reset).
    error_count: int | None = Field(default=None, ge=0)
    # Only requests whose "METHOD /path" contains this text are affected (None = all).
    match: str | None = None

    @property
    def retry_after_header(self) -> str | None:
        if self.retry_after is not None:
            return self.retry_after
        return None if self.retry_after_s is None else str(self.retry_after_s)


@dataclass
class JournalEntry:
    seq: int
    method: str
    path: str
    query: str
    started_at: str
    status: int | None = None
    body: Any = None


@dataclass
class FaultState:
    """Thread-safe: the emulator runs in a server thread, tests poke it from another."""

    settings: FaultSettings = field(default_factory=FaultSettings)
    journal: list[JournalEntry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rng: random.Random = field(default_factory=random.Random)

    def update(self, patch: FaultSettings, fields_set: set[str]) -> FaultSettings:
        with self._lock:
            merged = self.settings.model_dump()
            merged.update({k: v for k, v in patch.model_dump().items() if k in fields_set})
            self.settings = FaultSettings(**merged)
            return self.settings

    def reset(self) -> None:
        with self._lock:
            self.settings = FaultSettings()

    def begin(self, method: str, path: str, query: str, body: Any = None) -> JournalEntry:
        with self._lock:
            entry = JournalEntry(
                seq=len(self.journal) + 1,
                method=method,
                path=path,
                query=query,
                started_at=datetime.now(UTC).isoformat(),
                body=body,
            )
            self.journal.append(entry)
            return entry

    def journal_dicts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(e) for e in self.journal]

    def clear_journal(self) -> None:
        with self._lock:
            self.journal.clear()

    def _matches(self, method: str, path: str) -> bool:
        pattern = self.settings.match
        return pattern is None or pattern in f"{method} {path}"

    async def delay(self, method: str, path: str) -> None:
        """Hold the request for ``latency_ms``; changing or clearing the faults releases it
        early, so a test can hold a call for as long as it needs and then let it go."""
        held_by = self.settings
        if not held_by.latency_ms or not self._matches(method, path):
            return
        loop = asyncio.get_running_loop()
        release_at = loop.time() + held_by.latency_ms / 1000
        while self.settings is held_by and (left := release_at - loop.time()) > 0:
            await asyncio.sleep(min(left, _RELEASE_CHECK_S))

    def pick_error(self, method: str, path: str) -> tuple[int, str | None] | None:
        """Decide whether this request fails: (status, Retry-After header value) or None."""
        with self._lock:
            s = self.settings
            if s.outage:
                return 503, s.retry_after_header
            if s.error_status is None or not self._matches(method, path):
                return None
            if s.error_count is not None:
                if s.error_count <= 0:
                    return None
                self.settings = s.model_copy(update={"error_count": s.error_count - 1})
            if self._rng.random() >= s.error_rate:
                return None
            return s.error_status, s.retry_after_header
