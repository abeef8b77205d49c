"""Footprint of ``jitadmin serve``: resident memory idle and with 100 000 grants in history,
and CPU used while idle (the worker must sleep until the next deadline, not spin)."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlalchemy import insert

from bench.common import (
    JITADMIN,
    SECRET_KEY,
    cpu_seconds,
    env_for,
    loadavg,
    log,
    rss_mib,
    stop_process,
)
from jitadmin.connectors import emulator_world
from jitadmin.db.tables import GrantRow
from jitadmin.emulators.runner import free_port
from jitadmin.entrypoints.demo import seed
from jitadmin.settings import Settings
from jitadmin.wiring import build


@dataclass
class FootprintResult:
    rss_idle_mib: float
    rss_history_mib: float
    rss_history_after_requests_mib: float
    idle_cpu_pct: float
    idle_cpu_history_pct: float
    history: int
    window_s: float
    loadavg: str


def _history(app: object, count: int) -> None:
    """``count`` revoked grants, inserted in bulk (the rows the worker would have left)."""
    now = datetime.now(UTC)
    rows = []
    for i in range(count):
        at = now - timedelta(days=1 + i % 300)
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "state": "revoked",
                "customer": "pedroaviary" if i % 2 else "northwind",
                "identity_provider": "m365",
                "ticket_id": "48211",
                "requester": f"tech{i % 500}@msp.example",
                "reason": "history",
                "duration_minutes": 60,
                "username": f"jit-{i}@pedroaviary.onmicrosoft.com",
                "created_at": at,
                "expires_at": at + timedelta(hours=1),
                "activated_at": at,
                "revoked_at": at + timedelta(hours=1, seconds=1),
                "account": {"user_id": str(uuid.uuid4()), "user_purged": True},
                "steps": ["user_created", "role_assigned", "verified_revoked"],
                "attempts": 0,
            }
        )
    engine = app.database.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(GrantRow), rows[start : start + 5000])


def _idle(pid: int, window_s: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(window_s)
    return (cpu_seconds(pid) - before) / window_s * 100


def _serve(url_db: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [JITADMIN, "serve", "--port", str(port)],
        env=env_for(url_db, tmp),
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "serve.log").open("ab"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("jitadmin serve did not come up")


def run_footprint(history: int = 100_000, window_s: float = 30.0) -> FootprintResult:
    with tempfile.TemporaryDirectory(prefix="jit-bench-") as tmp_name:
        tmp = Path(tmp_name)
        url_db = f"sqlite:///{tmp / 'jitadmin.db'}"
        world = emulator_world()
        world.start()
        app = build(Settings(data_dir=tmp, database_url=url_db, secret_key=SecretStr(SECRET_KEY)))
        users = seed(app, world)
        load = loadavg()
        proc, _url = _serve(url_db, tmp)
        try:
            time.sleep(3)
            rss_idle = rss_mib(proc.pid)
            cpu_idle = _idle(proc.pid, window_s)
            log(f"serve idle: {rss_idle:.1f} MiB, {cpu_idle:.2f} % of a core")
        finally:
            stop_process(proc)
        _history(app, history)
        app.close()
        proc, url = _serve(url_db, tmp)
        try:
            time.sleep(3)
            rss_history = rss_mib(proc.pid)
            cpu_history = _idle(proc.pid, window_s)
            # Pages that read history: the admin's grant list, a few times.
            token = users["admin"]["token"]
            for _ in range(5):
                httpx.get(
                    f"{url}/api/v1/grants",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                ).raise_for_status()
            rss_after = rss_mib(proc.pid)
            log(
                f"serve with {history} grants: {rss_history:.1f} MiB idle, "
                f"{rss_after:.1f} MiB after listing, {cpu_history:.2f} % of a core"
            )
        finally:
            stop_process(proc)
            world.stop()
        return FootprintResult(
            rss_idle_mib=rss_idle,
            rss_history_mib=rss_history,
            rss_history_after_requests_mib=rss_after,
            idle_cpu_pct=cpu_idle,
            idle_cpu_history_pct=cpu_history,
            history=history,
            window_s=window_s,
            loadavg=load,
        )
