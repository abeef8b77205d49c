"""A real HTTP receiver on loopback for notification tests: records every request it gets
(raw body, headers) and answers with the statuses it is told to, then 200."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from support.system import System


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        """What a receiver does: HMAC the raw body, compare in constant time."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-jitadmin-signature", ""))


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.failures: list[int] = []  # statuses to answer first, in order
        self.down = False  # answer 503 to everything while set
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver._answer()
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Received(self.path, headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self) -> int:
        with self._lock:
            if self.down:
                return 503
            return self.failures.pop(0) if self.failures else 200

    def delivered(self) -> list[Received]:
        """Requests answered 2xx, i.e. deliveries the receiver accepted."""
        with self._lock:
            return [r for r in self.requests if r.status < 300]

    def accepted_once(self) -> dict[str, Received]:
        """Accepted deliveries by ``X-Jitadmin-Delivery`` (the receiver's dedup key)."""
        return {r.headers["x-jitadmin-delivery"]: r for r in self.delivered()}


@contextmanager
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running._thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


def subscribe(system: System, hook: Receiver, events: list[str], secret: str) -> str:
    """A webhook channel to ``hook`` for ``events``, made by the admin; its id."""
    with system.client("admin") as admin:
        made = admin.post(
            "/notification-channels",
            json={"kind": "webhook", "url": hook.url, "secret": secret, "events": events},
        )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])
