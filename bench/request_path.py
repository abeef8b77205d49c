"""The request path: POST /api/v1/grants latency and throughput, and the console's form page
and ticket list with a slow (200 ms) PSA.

The server is ``jitadmin serve --no-worker`` in a subprocess (the worker is left out so that
only the request path is measured); the load comes from this process.
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher
from pydantic import SecretStr

from bench.common import JITADMIN, SECRET_KEY, env_for, loadavg, log, percentile, stop_process
from jitadmin.connectors import emulator_world
from jitadmin.emulators.runner import free_port
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.entrypoints.demo import seed
from jitadmin.services import admin
from jitadmin.settings import Settings
from jitadmin.wiring import build


@dataclass
class RequestPathResult:
    post_latencies_ms: list[float]
    post_rps: float
    post_errors: int
    form_ms: list[float]
    tickets_ms: list[float]
    loadavg: str
    clients: int


def _technicians(app: Any, count: int) -> list[str]:
    """API tokens of ``count`` technicians (cheap argon2 parameters: only tokens are used)."""
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    original = admin._hasher
    admin._hasher = fast
    try:
        return [
            admin.add_user(app.ctx, None, username=f"bench{i}@msp.example", role="technician").token
            for i in range(count)
        ]
    finally:
        admin._hasher = original


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("jitadmin serve did not come up")


def run_request_path(
    sequential: int = 500,
    duration_s: float = 10.0,
    clients: int = 8,
    page_views: int = 30,
    profile: Path | None = None,
) -> RequestPathResult:
    """``profile``: record the server with py-spy (--gil, collapsed stacks) into this file."""
    with tempfile.TemporaryDirectory(prefix="jit-bench-") as tmp:
        return _run(Path(tmp), sequential, duration_s, clients, page_views, profile)


def _run(  # noqa: PLR0915 - one measurement, start to finish
    tmp: Path,
    sequential: int,
    duration_s: float,
    clients: int,
    page_views: int,
    profile: Path | None,
) -> RequestPathResult:
    url_db = f"sqlite:///{tmp / 'jitadmin.db'}"
    world = emulator_world()
    world.start()
    app = build(Settings(data_dir=tmp, database_url=url_db, secret_key=SecretStr(SECRET_KEY)))
    users = seed(app, world)
    slots_needed = sequential + 20 + int(duration_s * 800)
    tokens = _technicians(app, slots_needed // len(world.customers) + 1)
    app.close()
    port = free_port()
    server = subprocess.Popen(
        [JITADMIN, "serve", "--no-worker", "--port", str(port)],
        env=env_for(url_db, tmp),
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "serve.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url)
        slots = [(t, c) for t in tokens for c in world.customers]
        lock = threading.Lock()

        def next_body() -> tuple[str, dict[str, Any]] | None:
            with lock:
                if not slots:
                    return None
                token, customer = slots.pop()
            return token, {
                "customer": customer.slug,
                "identity_provider": "m365",
                "ticket_id": customer.open_ticket_ids[0],
                "duration_minutes": 30,
                "reason": "request path benchmark",
            }

        def post(client: httpx.Client) -> tuple[float, bool] | None:
            item = next_body()
            if item is None:
                return None
            token, body = item
            started = time.perf_counter()
            response = client.post(
                "/api/v1/grants", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            return (time.perf_counter() - started) * 1000, response.status_code == 202

        spy = None
        if profile is not None:
            spy = subprocess.Popen(
                [str(Path(JITADMIN).parent / "py-spy"), "record", "--gil", "--format", "raw",
                 "-r", "200", "-o", str(profile), "--pid", str(server.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        load = loadavg()
        latencies: list[float] = []
        errors = 0
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(20):  # warm-up
                post(client)
            for _ in range(sequential):
                measured = post(client)
                assert measured is not None
                latencies.append(measured[0])
                errors += not measured[1]
        log(f"POST /grants sequential: p50 {percentile(latencies, 50):.1f} ms")

        done = [0]
        failed = [0]
        stop_at = time.monotonic() + duration_s

        def hammer() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                while time.monotonic() < stop_at:
                    measured = post(client)
                    if measured is None:
                        return
                    with lock:
                        done[0] += 1
                        failed[0] += not measured[1]

        started = time.monotonic()
        threads = [threading.Thread(target=hammer) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rps = done[0] / (time.monotonic() - started)
        log(f"POST /grants with {clients} clients: {rps:.0f} requests/s, {failed[0]} failed")
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)

        form_ms, tickets_ms = _console(url, world, users["technician"], page_views)
        return RequestPathResult(
            post_latencies_ms=latencies,
            post_rps=rps,
            post_errors=errors + failed[0],
            form_ms=form_ms,
            tickets_ms=tickets_ms,
            loadavg=load,
            clients=clients,
        )
    finally:
        stop_process(server)
        world.stop()


def _console(
    url: str, world: EmulatorWorld, technician: dict[str, str], views: int
) -> tuple[list[float], list[float]]:
    """Sign in like a browser, then time GET / and the ticket list with a 200 ms PSA."""
    psa_admin = world.psa_settings()["admin_url"]
    httpx.put(f"{psa_admin}/faults", json={"latency_ms": 200}).raise_for_status()
    form_ms: list[float] = []
    tickets_ms: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as browser:
        page = browser.get("/signin").text
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found is not None, "sign-in form without a CSRF token"
        signed = browser.post(
            "/signin",
            data={
                "csrf_token": found.group(1),
                "next": "/",
                "username": technician["username"],
                "password": technician["password"],
            },
        )
        assert signed.status_code == 303, signed.text[:300]
        slug = world.customers[0].slug
        for _ in range(views):
            started = time.perf_counter()
            response = browser.get("/")
            form_ms.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
            started = time.perf_counter()
            response = browser.get(f"/web/api/customers/{slug}/tickets")
            tickets_ms.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text[:300]
    log(
        f"form p50 {percentile(form_ms, 50):.0f} ms, "
        f"ticket list p50 {percentile(tickets_ms, 50):.0f} ms"
    )
    return form_ms, tickets_ms
