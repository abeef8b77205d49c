"""A real SMTP server on loopback for the email tests: Python's stdlib ``smtpd`` (deprecated
but present in 3.11; no extra dependency), run by asyncore in a thread, keeping each mail."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore
    import smtpd


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: list[str]
    message: Message


class _Server(smtpd.SMTPServer):
    def __init__(self, mails: list[Mail], socket_map: dict[int, Any]) -> None:
        self.mails = mails
        # No remote: this server keeps mails, it relays nothing.
        super().__init__(("127.0.0.1", 0), None, map=socket_map, decode_data=False)  # type: ignore[arg-type]

    def process_message(
        self, peer: Any, mailfrom: str, rcpttos: list[str], data: bytes | str, **kwargs: Any
    ) -> None:
        raw = data if isinstance(data, bytes) else data.encode()
        self.mails.append(Mail(mailfrom, list(rcpttos), message_from_bytes(raw)))


@dataclass
class SmtpServer:
    port: int
    mails: list[Mail]


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    mails: list[Mail] = []
    socket_map: dict[int, Any] = {}
    server = _Server(mails, socket_map)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            asyncore.loop(timeout=0.05, count=1, map=socket_map)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert server.socket is not None
        yield SmtpServer(server.socket.getsockname()[1], mails)
    finally:
        stop.set()
        thread.join(5)
        for dispatcher in list(socket_map.values()):
            dispatcher.close()
