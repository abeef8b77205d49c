"""Pieces the Autotask and HaloPSA emulators share (spec §7).

- ``DropSwitch``: ``POST {admin_url}/drop_after_commit {"count": n, "mode": "500"|"drop"}`` makes
  the next n note POSTs store the note and then either answer 500 or cut the connection halfway
  through the response, so the client cannot know whether the note exists.
- ``RollingWindow``: a request counter over a rolling time window (Autotask's hourly threshold,
  Halo's 5-minute rate limit).
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

DropMode = Literal["500", "drop"]


class DropAfterCommit(BaseModel):
    count: int = Field(ge=0, le=1000)
    mode: DropMode = "500"


class DropSwitch:
    """How many of the next note POSTs lose their answer after the commit, and how."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._mode: DropMode = "500"

    def arm(self, count: int, mode: DropMode = "500") -> None:
        with self._lock:
            self._count, self._mode = count, mode

    def take(self) -> DropMode | None:
        """Use up one drop, if armed: the mode to apply to this response."""
        with self._lock:
            if self._count <= 0:
                return None
            self._count -= 1
            return self._mode


class CutConnection(Response):
    """Starts a response, sends part of it, then fails so the server closes the socket.

    uvicorn closes the transport when the app raises after the response has started; the client
    sees the connection end before the promised body (``httpx.RemoteProtocolError``).
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"', "more_body": True})
        raise ConnectionAbortedError("emulated connection drop after commit")


class RollingWindow:
    """Counts events in the last ``window_s`` seconds (monotonic time). Thread-safe."""

    def __init__(
        self, limit: int, window_s: float, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._events: collections.deque[float] = collections.deque()
        self._now = now
        self.limit = limit
        self.window_s = window_s

    def _trim(self, now: float) -> None:
        while self._events and self._events[0] <= now - self.window_s:
            self._events.popleft()

    def count(self) -> int:
        with self._lock:
            self._trim(self._now())
            return len(self._events)

    def admit(self) -> bool:
        """Count one request; False (and not counted) when the window is full already."""
        with self._lock:
            now = self._now()
            self._trim(now)
            if len(self._events) >= self.limit:
                return False
            self._events.append(now)
            return True

    def configure(self, limit: int, window_s: float | None = None, used: int | None = None) -> None:
        with self._lock:
            self.limit = limit
            if window_s is not None:
                self.window_s = window_s
            if used is not None:
                now = self._now()
                self._events = collections.deque([now] * used)

    def reset(self, limit: int, window_s: float) -> None:
        with self._lock:
            self.limit, self.window_s = limit, window_s
            self._events.clear()


def route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the full path in ``scope["path"]``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def journal_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
