"""A minimal HTTP CONNECT proxy on loopback (what HTTPS_PROXY points at): it records each
tunnel's target and relays bytes both ways, seeing only TLS."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class ConnectProxy:
    server: socketserver.ThreadingTCPServer
    targets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port!s}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_connect_proxy() -> ConnectProxy:
    proxy: ConnectProxy

    class Tunnel(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = self.request.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target = head.split(b" ", 2)[:2]
            if method != b"CONNECT":
                self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            proxy.targets.append(target.decode())
            host, port = target.decode().rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                ends = [self.request, upstream]
                while True:
                    ready, _, _ = select.select(ends, [], [], 30)
                    if not ready:
                        return
                    for end in ready:
                        data = end.recv(65536)
                        if not data:
                            return
                        (upstream if end is self.request else self.request).sendall(data)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tunnel)
    server.daemon_threads = True
    proxy = ConnectProxy(server)
    threading.Thread(target=server.serve_forever, name="connect-proxy", daemon=True).start()
    return proxy
