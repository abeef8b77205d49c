"""adapters/pinned_http.PinnedHttp against real servers on loopback: keep-alive connections are
reused, one the server closed while idle is dropped before reuse (the request still arrives), a
certificate for another name is refused, and an address the policy does not list is never
dialled."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.adapters.pinned_http import PinnedHttp
from jitadmin.core.egress import EgressPolicy, EgressRefusedError

from support.agents import self_signed

LOOPBACK = EgressPolicy.parse(["127.0.0.0/8", "127.0.0.1"])


class Counting(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def do_GET(self) -> None:
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def keeps_alive() -> Iterator[Counting]:
    yield from serving(Counting())  # type: ignore[misc]


def url(server: ThreadingHTTPServer, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}/v1.0/users"


def test_a_kept_alive_connection_is_reused(keeps_alive: Counting) -> None:
    http = PinnedHttp(LOOPBACK)
    try:
        for _ in range(3):
            answer = http.request("GET", url(keeps_alive))
            assert answer.status_code == 200 and answer.json() == {"ok": True}
    finally:
        http.close()
    assert keeps_alive.connections == 1


class ClosingAfterEachAnswer:
    """Answers one request per connection with keep-alive announced, then closes it; ``closed``
    is set once it has, so the test knows the idle socket is gone before the next request."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                received = b""
                while b"\r\n\r\n" not in received:
                    received += conn.recv(4096)
                body = b'{"ok": true}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Connection: keep-alive\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            self.closed.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1.0/users"


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    server = ClosingAfterEachAnswer()
    http = PinnedHttp(LOOPBACK)
    try:
        for _ in range(3):
            server.closed.clear()
            assert http.request("GET", server.url).status_code == 200
            assert server.closed.wait(10)
    finally:
        http.close()
        server.listener.close()
    assert server.connections == 3


def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    tls = self_signed(tmp_path, host="127.0.0.2")  # names 127.0.0.2, served on 127.0.0.1
    server = Counting()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    trusting = ssl.create_default_context(cadata=tls.ca_pem)
    for _ in serving(server):
        http = PinnedHttp(LOOPBACK, ssl_context=trusting)
        try:
            with pytest.raises(httpx.ConnectError):
                http.request("GET", url(server, "https"))
        finally:
            http.close()


def test_an_address_the_policy_does_not_list_is_never_dialled(keeps_alive: Counting) -> None:
    http = PinnedHttp(EgressPolicy())
    try:
        with pytest.raises(EgressRefusedError):
            http.request("GET", url(keeps_alive, "https"))
    finally:
        http.close()
    assert keeps_alive.connections == 0
