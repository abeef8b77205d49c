"""Transport hardening for every response (API, pages, health): headers and a body size bound.

Pure ASGI, so it also covers streamed (chunked) bodies that carry no Content-Length.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from jitadmin.core.errors import RequestTooLargeError
from jitadmin.entrypoints.api.problems import problem_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# API answers are data, never documents: nothing may run, load or frame them. The same policy
# covers /docs (a script-free page, off unless JITADMIN_API_DOCS=true).
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Answers may carry a password or a token (grant creation, reveal, token mint, a new user's
# first credentials): no shared or browser cache keeps any answer, except the static assets.
NO_STORE = b"no-store"
CACHEABLE_PATHS = ("/static/",)
HSTS = "max-age=31536000; includeSubDomains"


class Hardening:
    def __init__(self, app: ASGIApp, *, max_body: int, hsts_always: bool) -> None:
        self.app = app
        self.max_body = max_body
        self.hsts_always = hsts_always

    def _headers(
        self, scope: Scope, existing: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        names = {name.lower() for name, _ in existing}
        path = str(scope.get("path", ""))
        extra: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
            (b"content-security-policy", API_CSP.encode()),
        ]
        if not path.startswith(CACHEABLE_PATHS):
            extra.append((b"cache-control", NO_STORE))
        if self.hsts_always or scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", HSTS.encode()))
        return existing + [(n, v) for n, v in extra if n not in names]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_hardened(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self._headers(scope, list(message.get("headers", [])))
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._reject(scope, receive, send_hardened)
            return
        # Read the (bounded) body first, then replay it: a chunked body without a length is
        # cut off at the limit instead of being parsed.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message), send_hardened)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._reject(scope, receive, send_hardened)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send_hardened)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(RequestTooLargeError(self.max_body))(scope, receive, send)


def _replay(chunks: list[bytes], final: Message | None, then: Receive | None = None) -> Receive:
    """A receive() that hands out the buffered body once, then defers to the real one."""
    pending: list[Message] = [
        {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    ]
    if final is not None:
        pending = [final]

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
