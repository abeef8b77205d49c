"""Metrics after a grant's life (overdue while Graph is down, then the lag of the revocation),
and readiness that follows the database: 200, then 503 once PostgreSQL cannot be reached."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.runner import serve_in_thread
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.entrypoints.api.app import create_app
from jitadmin.wiring import build

from support.config import fast_settings
from support.postgres import postgres_server_url
from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


def metric(system: System, name: str, **labels: str) -> float | None:
    text = system.metrics()
    wanted = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
    found = re.search(rf"^{re.escape(name + wanted)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def set_graph_faults(system: System, **faults: Any) -> None:
    admin = system.world.graph_settings(PEDRO)["admin_url"]
    if faults:
        httpx.put(f"{admin}/faults", json=faults).raise_for_status()
    else:
        httpx.delete(f"{admin}/faults").raise_for_status()


@pytest.fixture
def clocked(tmp_path: Path, clock: ManualClock) -> Iterator[System]:
    running = start_system(tmp_path, clock=clock, overdue_grace_seconds=300)
    yield running
    stop_system(running)


def test_metrics_follow_a_grant_through_an_outage(clocked: System, clock: ManualClock) -> None:
    system = clocked
    with system.client() as api:
        created = api.post(
            "/grants",
            json={"customer": PEDRO.slug, "identity_provider": "m365",
                  "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
                  "reason": "Metrics drill"},
        )  # fmt: skip
    assert created.status_code == 202, created.text
    grant_id = created.json()["id"]
    system.wait_state(grant_id, "active")
    assert metric(system, "jitadmin_grants", state="active") == 1
    assert metric(system, "jitadmin_overdue_revocations") == 0

    # Graph is down when the grant ends: the revocation is late, and overdue after the grace.
    set_graph_faults(system, outage=True)
    clock.advance(timedelta(minutes=31))
    wait_for(
        lambda: (metric(system, "jitadmin_connector_errors_total", connector="m365",
                        kind="transient") or 0) >= 1,
        what="a counted connector error",
    )  # fmt: skip
    assert metric(system, "jitadmin_overdue_revocations") == 0  # 1 minute late: within grace
    clock.advance(timedelta(minutes=10))
    assert metric(system, "jitadmin_overdue_revocations") == 1
    assert system.grant(grant_id)["state"] in ("revoking", "revoke_failed")

    set_graph_faults(system)
    clock.advance(timedelta(minutes=1))
    system.wait_state(grant_id, "revoked")
    assert metric(system, "jitadmin_overdue_revocations") == 0
    assert metric(system, "jitadmin_grants", state="revoked") == 1
    # One revocation, at least 11 simulated minutes after the expiry: in the 30-minute bucket,
    # not in the 10-minute one.
    lag = "jitadmin_revocation_lag_seconds"
    assert metric(system, f"{lag}_count", identity_provider="m365") == 1
    assert (metric(system, f"{lag}_sum", identity_provider="m365") or 0) >= 11 * 60
    assert metric(system, f"{lag}_bucket", identity_provider="m365", le="600.0") == 0
    assert metric(system, f"{lag}_bucket", identity_provider="m365", le="1800.0") == 1
    wait_for(lambda: metric(system, "jitadmin_outbox_pending") == 0, what="the notes delivered")

    # The worker's heartbeat is in the database, in the worker's (simulated) time: it follows
    # the clock.
    assert system.worker is not None
    heartbeat = "jitadmin_worker_heartbeat_timestamp_seconds"
    worker_id = system.worker.id
    now = clock.now().timestamp()
    wait_for(
        lambda: (metric(system, heartbeat, worker=worker_id) or 0) >= now,
        what="a heartbeat at the simulated now",
    )


# --- readiness against a real PostgreSQL that goes away ---------------------------------


class TcpProxy:
    """A TCP forwarder in front of PostgreSQL; closing it makes the database unreachable."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def close(self) -> None:
        # shutdown() first: close() alone leaves a blocked accept() listening.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for open_socket in self.sockets:
                with contextlib.suppress(OSError):
                    open_socket.shutdown(socket.SHUT_RDWR)
                open_socket.close()


@pytest.fixture
def pg_database() -> Iterator[tuple[str, str, int]]:
    """A fresh database on the test server: (URL template without host:port, host, port)."""
    url = postgres_server_url()
    found = re.match(r"^(postgresql\+psycopg://[^@]*@)([^:/]+):(\d+)/(.+)$", url)
    assert found, "unexpected JITADMIN_TEST_POSTGRES_URL"
    prefix, host, port, _ = found.groups()
    name = f"jit_{uuid.uuid4().hex[:12]}"
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{prefix}{{host}}:{{port}}/{name}", host, int(port)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_readiness_fails_when_the_database_is_unreachable(
    tmp_path: Path, pg_database: tuple[str, str, int]
) -> None:
    template, host, port = pg_database
    proxy = TcpProxy(host, port)
    url = template.format(host="127.0.0.1", port=proxy.port)
    app = build(fast_settings(tmp_path, database_url=url))
    server = serve_in_thread(create_app(app))
    try:
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"

        proxy.close()
        unready = httpx.get(f"{server.url}/readyz")
        assert unready.status_code == 503
        assert unready.headers["content-type"].startswith("application/problem+json")
        assert unready.json()["detail"] == "the database is unreachable"
        assert template.split("@")[0].split("//")[1] not in unready.text  # no credentials
        # Liveness does not depend on the database: the process itself is fine.
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        proxy.close()
        server.stop()
        app.close()
