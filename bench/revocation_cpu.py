"""CPU per revocation, one thread, no contention: the figure that load on a shared machine
moves least.

N active M365 grants (seeded like the storm, ``bench.storm._seed_grants``) expire at once and
one ``Worker.run_until_idle()`` on this thread claims, revokes and delivers their ticket notes,
exactly the code the worker pool runs, only inline. The Graph and PSA emulators run in this
process on their own threads, at zero latency and without replication lag;
``time.thread_time()`` counts this thread's CPU only, so the figure is jitadmin's cost without
the emulators', without the contention of 64 threads, and little moved by other processes.

    .venv/bin/python -m bench.revocation_cpu --grants 300 --tenants 10
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from bench.common import SECRET_KEY, customers
from bench.storm import StormSpec, _seed_grants, _set_expiry
from jitadmin.connectors import emulator_world
from jitadmin.core.grant import GrantState
from jitadmin.entrypoints.demo import seed
from jitadmin.entrypoints.worker import Worker, WorkerOptions
from jitadmin.settings import Settings
from jitadmin.wiring import build


def measure(grants: int, tenants: int, profile: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="jit-cpu-") as tmp:
        world = emulator_world(customers=customers(tenants))
        world.start()
        app = build(
            Settings(
                data_dir=Path(tmp),
                database_url=f"sqlite:///{Path(tmp) / 'jitadmin.db'}",
                secret_key=SecretStr(SECRET_KEY),
            )
        )
        try:
            seed(app, world)
            # One thread alone never advances a tenant's request count the way a storm does, so
            # Graph's replication lags (counted in requests) would turn into retries with
            # backoff sleeps: switched off here (the storm keeps them). Zero latency.
            admin = world.graph_settings(world.customers[0])["admin_url"]
            lags = ("deleted", "assignment", "removed", "privileged")
            httpx.put(
                f"{admin}/faults", json={"latency_ms": 0, **{f"{k}_lag_requests": 0 for k in lags}}
            ).raise_for_status()
            ids = _seed_grants(app, world, StormSpec(grants, tenants, "sqlite"))
            worker = Worker(app.ctx, WorkerOptions(concurrency=64, per_tenant=8))
            worker.run_until_idle()  # nothing due yet; warms the imports and statement caches
            _set_expiry(app, ids, datetime.now(UTC) - timedelta(seconds=1))
            world.graph.faults.clear_journal()
            profiler = cProfile.Profile() if profile else None
            started, wall = time.thread_time(), time.monotonic()
            if profiler:
                profiler.enable()
            worker.run_until_idle()
            if profiler:
                profiler.disable()
            cpu, wall = time.thread_time() - started, time.monotonic() - wall
            with app.ctx.uow() as uow:
                revoked = len(uow.grants.find(state=GrantState.REVOKED.value, limit=grants + 1))
            calls = sum(
                1 for e in world.graph.faults.journal_dicts() if e["path"].startswith("/v1.0")
            )
            if profiler and profile:
                profiler.dump_stats(str(profile))
        finally:
            app.close()
            world.stop()
    return {
        "grants": grants,
        "tenants": tenants,
        "revoked": revoked,
        "cpu_ms_per_revocation": 1000 * cpu / max(revoked, 1),
        "wall_s": wall,
        "graph_calls_per_revocation": calls / max(revoked, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grants", type=int, default=300)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile stats here")
    args = parser.parse_args()
    result = measure(args.grants, args.tenants, args.profile)
    print(json.dumps(result))
    if args.profile:
        pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
