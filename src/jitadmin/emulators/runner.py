"""Serve an ASGI app on loopback from a background thread (demo, emulate and tests)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, **tls: Any) -> RunningServer:
    """Start uvicorn in a daemon thread and return once it accepts connections.

    Port 0 asks the OS for a free port; ``tls``: uvicorn's ``ssl_certfile``/``ssl_keyfile``.
    uvicorn binds the socket itself: a socket handed in from outside answered every request
    about 40 ms late (Nagle against delayed ACK).
    """
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        # uvicorn would believe X-Forwarded-For from loopback; the app decides whom to trust.
        proxy_headers=False, **tls,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"asgi-{host}-{port}", daemon=True)
    thread.start()
    ready = threading.Event()
    while not server.started and thread.is_alive():
        ready.wait(0.01)
    if not server.started:
        raise RuntimeError(f"server on {host}:{port} failed to start")
    bound = server.servers[0].sockets[0].getsockname()
    scheme = "https" if tls.get("ssl_certfile") else "http"
    return RunningServer(server, thread, host, int(bound[1]), scheme)
