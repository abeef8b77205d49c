"""Pieces the ConnectWise, Autotask and HaloPSA emulators share.

- ``add_vendor_gate``: every vendor request is journaled, then delayed and failed per the fault
  switches, then put to the vendor's own checks (auth, rate limits); ``/_admin`` passes untouched.
- ``add_admin_routes``: ``PUT``/``DELETE /faults``, ``GET``/``DELETE /requests`` and
  ``POST /drop_after_commit`` under ``/_admin`` (no auth, no faults).
- ``PsaWorld``: the lock, switches, companies and tickets every emulator's state holds.
- ``DropSwitch``: ``POST {admin_url}/drop_after_commit {"count": n, "mode": "500"|"drop"}`` makes
  the next n note POSTs store the note and then either answer 500 or cut the connection halfway
  through the response, so the client cannot know whether the note exists.
- ``RollingWindow``: a request counter over a rolling time window (Autotask's hourly threshold,
  Halo's 5-minute rate limit).
"""

from __future__ import annotations

import collections
import copy
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from jitadmin.emulators.faults import FaultSettings, FaultState
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

DropMode = Literal["500", "drop"]
CallNext = Callable[[Request], Awaitable[Response]]
# The vendor's rendering of an injected fault: (status, headers) -> response.
FaultAnswer = Callable[[int, dict[str, str]], Response]
# The vendor's own checks once the faults have passed: a refusal, or None to go on.
Admission = Callable[[Request, str], Response | None]
# What the journal records of a request: (path, body), given the routed path and the raw body.
JournalView = Callable[[Request, str, bytes], tuple[str, Any]]


class DropCount(BaseModel):
    count: int = Field(ge=0, le=1000)


class DropAfterCommit(DropCount):
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


def mount_prefix(request: Request) -> str:
    """The path the app is mounted under (``/autotask`` in EmulatorWorld, ``""`` alone)."""
    full, below = request.url.path, route_path(request.scope)
    return full[: len(full) - len(below)] if full.endswith(below) else ""


def _journal_as_is(_: Request, path: str, raw: bytes) -> tuple[str, Any]:
    return path, journal_body(raw)


def add_vendor_gate(
    app: FastAPI,
    faults: FaultState,
    answer_fault: FaultAnswer,
    admit: Admission,
    journal: JournalView = _journal_as_is,
) -> None:
    """Journal, delay, fail (per the switches), then ``admit`` every request outside /_admin."""

    @app.middleware("http")
    async def _vendor_gate(request: Request, call_next: CallNext) -> Response:
        path = route_path(request.scope)
        if path.startswith("/_admin"):
            return await call_next(request)
        shown, body = journal(request, path, await request.body())
        entry = faults.begin(request.method, shown, request.url.query, body)
        try:
            response = await _gate(request, call_next, path)
        except Exception:
            entry.status = 500
            raise
        entry.status = response.status_code
        return response

    async def _gate(request: Request, call_next: CallNext, path: str) -> Response:
        await faults.delay(request.method, path)
        injected = faults.pick_error(request.method, path)
        if injected is not None:
            status, retry_after = injected
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return answer_fault(status, headers)
        refusal = admit(request, path)
        return refusal if refusal is not None else await call_next(request)


def add_admin_routes(
    app: FastAPI,
    faults: FaultState,
    drops: DropSwitch,
    on_reset: Callable[[], None] = lambda: None,
    *,
    drop_modes: bool = True,
) -> None:
    """The admin API every PSA emulator offers; ``on_reset`` restores vendor-specific switches."""

    @app.put("/_admin/faults")
    def put_faults(patch: FaultSettings) -> dict[str, Any]:
        return faults.update(patch, patch.model_fields_set).model_dump()

    @app.delete("/_admin/faults")
    def delete_faults() -> dict[str, Any]:
        faults.reset()
        drops.arm(0)
        on_reset()
        return faults.settings.model_dump()

    @app.get("/_admin/requests")
    def get_requests() -> list[dict[str, Any]]:
        return faults.journal_dicts()

    @app.delete("/_admin/requests")
    def delete_requests() -> Response:
        faults.clear_journal()
        return Response(status_code=204)

    if drop_modes:

        @app.post("/_admin/drop_after_commit")
        def drop_after_commit(body: DropAfterCommit) -> dict[str, Any]:
            drops.arm(body.count, body.mode)
            return body.model_dump()

    else:
        # ConnectWise's switch predates the modes: it only ever answers 500, echoes only the count.
        @app.post("/_admin/drop_after_commit")
        def drop_count(body: DropCount) -> dict[str, Any]:
            drops.arm(body.count)
            return {"count": body.count}


class PsaWorld:
    """What every PSA emulator's world holds. Thread-safe: handlers run in the server thread,
    tests read and poke from theirs (``_lock`` guards every record)."""

    def __init__(self, creds: SeedCredentials) -> None:
        self.creds = creds
        self.faults = FaultState()
        self.drops = DropSwitch()
        self._lock = threading.Lock()
        self._companies: dict[int, dict[str, Any]] = {}
        self._tickets: dict[int, dict[str, Any]] = {}

    # Reads hand out copies, so no caller can change a record behind the lock.

    def companies(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._companies.values()))

    def tickets(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._tickets.values()))

    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._tickets.get(ticket_id))

    def update_ticket(self, ticket_id: int, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge ``changes`` into the ticket (a vendor's update call); a copy of the result."""
        with self._lock:
            ticket = self._tickets.get(ticket_id)
            if ticket is None:
                return None
            ticket.update(copy.deepcopy(dict(changes)))
            return copy.deepcopy(ticket)

    def _new_ticket_id(self) -> int:
        """The next free ticket id; the caller holds the lock."""
        return max(self._tickets, default=0) + 1


class TicketGroundTruth(Protocol):
    """What a PSA emulator's state lets a test see and set up beyond the vendor's API: the
    stored truth, and the steps a technician would take in the PSA itself."""

    def add_ticket(self, company_id: int, summary: str, *, closed: bool = False) -> int: ...

    def close_ticket(self, ticket_id: int) -> None: ...

    def seed_note(self, ticket_id: int, text: str) -> None:
        """A note written by someone else (no faults, no journal)."""

    def stored_notes(self, ticket_id: str) -> list[tuple[str, str]]:
        """``(id, text)`` of every note really stored on the ticket, oldest first."""


@dataclass(frozen=True)
class JournalPaths:
    """Where a vendor's requests show in the journal (matched case-insensitively)."""

    # What the single-ticket GET's path contains; the listing's path must contain it too (the
    # contract fails a listing with a fault matching it).
    ticket: str
    note_post: str  # what a note POST's path contains
    listing: tuple[str, str]  # (method, path end) of one page of the open-tickets listing
    drop_modes: tuple[DropMode, ...] = ("500", "drop")  # what drop_after_commit can do


@dataclass(frozen=True)
class PsaEmulator:
    """One PSA emulator as the emulator server mounts it under ``/{kind}``."""

    kind: str
    # (seed customers, seed credentials) → (the ASGI app, its state)
    create: Callable[[Sequence[SeedCustomer], SeedCredentials], tuple[ASGIApp, Any]]
    # (the mount's root URL, seed credentials) → exactly the body PUT /psa takes, + admin_url
    settings: Callable[[str, SeedCredentials], dict[str, Any]]
    paths: JournalPaths
