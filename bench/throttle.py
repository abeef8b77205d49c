"""A per-tenant write limit in front of the Graph emulator: 429 + Retry-After when exceeded.

Fixed one-second windows per tenant; once a tenant's window is full, every write until the
window ends is answered 429 with ``Retry-After`` (whole seconds, rounded up). It keeps score of
requests that arrived before a Retry-After it had given had elapsed, two ways:

* ``early_same_request``: the same logical call (``client-request-id``) retried too soon, i.e.
  the client ignored the Retry-After it was given;
* ``early_other_request``: another call for the throttled tenant during the block, e.g. a
  parallel revocation that had not been throttled yet.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from typing import Any, ClassVar

from starlette.types import ASGIApp, Receive, Scope, Send

from jitadmin.emulators.graph.state import GraphState

WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class WriteThrottle:
    instance: ClassVar[WriteThrottle | None] = None

    def __init__(self, app: ASGIApp, state: GraphState, writes_per_s: int) -> None:
        self.app = app
        self.state = state
        self.limit = writes_per_s
        self.lock = threading.Lock()
        self.window: dict[str, tuple[int, int]] = {}  # tenant -> (window second, writes)
        self.blocked_until: dict[str, float] = {}  # tenant -> monotonic
        self.request_until: dict[str, float] = {}  # client-request-id -> monotonic
        self.writes: Counter[str] = Counter()
        self.throttled = 0
        self.early_same = 0
        self.early_other = 0
        self.first_write: float | None = None
        self.last_write: float | None = None
        WriteThrottle.instance = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] not in WRITES or "/v1.0/" not in path:
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            tenant = self.state.authenticate(headers.get("authorization")).tenant_id
        except Exception:  # noqa: BLE001 - let the emulator answer 401 itself
            await self.app(scope, receive, send)
            return
        retry_after = self._admit(tenant, headers.get("client-request-id", ""))
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"error": {"code": "TooManyRequests", "message": "Too many requests."}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry_after).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _admit(self, tenant: str, request_id: str) -> int | None:
        """None to let the write through, else the Retry-After (s) of a 429."""
        now = time.monotonic()
        with self.lock:
            if request_id and now < self.request_until.get(request_id, -math.inf):
                self.early_same += 1
            elif now < self.blocked_until.get(tenant, -math.inf):
                self.early_other += 1
            second = int(now)
            window, count = self.window.get(tenant, (second, 0))
            if window != second:
                window, count = second, 0
            if count < self.limit:
                self.window[tenant] = (window, count + 1)
                self.writes[tenant] += 1
                self.first_write = self.first_write or now
                self.last_write = now
                return None
            retry_after = max(math.ceil(window + 1 - now), 1)
            until = now + retry_after
            self.blocked_until[tenant] = max(self.blocked_until.get(tenant, 0.0), until)
            if request_id:
                self.request_until[request_id] = until
            self.throttled += 1
            return retry_after

    def report(self, tenants: int) -> dict[str, Any]:
        with self.lock:
            busiest = max(self.writes.values(), default=0)
            return {
                "limit_per_tenant_s": self.limit,
                "writes": sum(self.writes.values()),
                "busiest_tenant_writes": busiest,
                # The limit's own minimum: the busiest tenant's writes at `limit` per second.
                "min_s": busiest / self.limit,
                "throttled": self.throttled,
                "early_same_request": self.early_same,
                "early_other_request": self.early_other,
                "tenants": tenants,
            }
