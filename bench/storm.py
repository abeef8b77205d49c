"""Expiry storms: N active M365 grants expiring within one second, revoked by real workers.

The Graph emulator runs in this process (its directory is seeded directly); every worker is a
``jitadmin worker`` subprocess, so jitadmin and the emulator do not share one interpreter.
"""

from __future__ import annotations

import math
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import bindparam, func, select, update

from bench.common import (
    JITADMIN,
    ROOT,
    SECRET_KEY,
    cpu_seconds,
    customers,
    env_for,
    loadavg,
    log,
    percentile,
    stop_process,
)
from bench.throttle import WriteThrottle
from jitadmin.adapters.m365.directory import MANAGED_TAG, display_name
from jitadmin.connectors import emulator_world
from jitadmin.core.grant import Grant, GrantState
from jitadmin.db.tables import GrantRow
from jitadmin.emulators.graph.model import GLOBAL_ADMINISTRATOR, assignment_id
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.entrypoints.demo import seed
from jitadmin.settings import Settings
from jitadmin.wiring import build

FAR_FUTURE = timedelta(days=30)


@dataclass(frozen=True)
class StormSpec:
    grants: int
    tenants: int
    database: str  # "sqlite" | "postgresql"
    workers: int = 1
    concurrency: int = 64
    per_tenant: int = 8
    latency_ms: int = 20
    throttle_writes_per_s: int | None = None  # per tenant; None = no throttling
    ungated: bool = False  # SQLite without the in-process write gate (the "before")
    timeout_s: float = 600.0

    @property
    def allowed_concurrency(self) -> int:
        """Revocations that may be in flight at once: pool size, and per-tenant cap x tenants
        (both per worker process)."""
        return self.workers * min(self.concurrency, self.per_tenant * self.tenants)

    @property
    def label(self) -> str:
        return f"{self.database} x{self.workers} worker · N={self.grants} · {self.tenants} tenants"


@dataclass
class StormResult:
    spec: StormSpec
    lags_s: list[float]
    revoked: int
    wall_s: float
    graph_calls: int
    token_calls: int
    loadavg_before: str
    loadavg_after: str
    worker_cpu_s: float
    # This process during the storm: the Graph and PSA emulators (plus a count query every
    # 0.5 s) — the other half of the machine's CPU budget.
    emulator_cpu_s: float = 0.0
    emulator_note: str = ""
    throttle: dict[str, Any] = field(default_factory=dict)

    @property
    def calls_per_revocation(self) -> float:
        return self.graph_calls / max(self.revoked, 1)

    @property
    def floor_s(self) -> float:
        """The emulator's floor for the last revocation: N x calls x latency / concurrency,
        and never less than one revocation's own chain of calls."""
        per = self.calls_per_revocation * self.spec.latency_ms / 1000
        return max(per, self.spec.grants * per / self.spec.allowed_concurrency)

    def summary(self) -> dict[str, float]:
        return {
            "p50": percentile(self.lags_s, 50),
            "p99": percentile(self.lags_s, 99),
            "max": max(self.lags_s) if self.lags_s else float("nan"),
            "floor": self.floor_s,
        }


def _seed_grants(app: Any, world: EmulatorWorld, spec: StormSpec) -> list[str]:
    """Emulator users holding Global Administrator + ACTIVE grants recording them."""
    tenants = world.customers
    now = datetime.now(UTC)
    ids: list[str] = []
    batch: list[Grant] = []

    def flush() -> None:
        with app.ctx.uow() as uow:
            for grant in batch:
                uow.grants.add(grant, None)
            uow.commit()
        batch.clear()

    for i in range(spec.grants):
        customer = tenants[i % len(tenants)]
        gid = str(uuid.uuid4())
        upn = f"jit-{gid[:8]}@{customer.domain}"
        user_id = world.graph.add_user(
            customer.tenant_id,
            upn,
            display_name=display_name(gid),
            roles=[GLOBAL_ADMINISTRATOR],
            employee_type=MANAGED_TAG,
        )
        batch.append(
            Grant(
                id=gid,
                customer=customer.slug,
                identity_provider="m365",
                ticket_id=customer.open_ticket_ids[0],
                requester=f"tech{i}@msp.example",
                reason="expiry storm benchmark",
                duration_minutes=60,
                created_at=now - timedelta(hours=1),
                expires_at=now + FAR_FUTURE,
                state=GrantState.ACTIVE,
                username=upn,
                activated_at=now - timedelta(hours=1),
                account={
                    "user_id": user_id,
                    "upn": upn,
                    "assignment_id": assignment_id(GLOBAL_ADMINISTRATOR, user_id),
                },
                steps=["user_created", "role_assigned", "verified_granted"],
            )
        )
        ids.append(gid)
        if len(batch) >= 500:
            flush()
    flush()
    return ids


def _set_expiry(app: Any, ids: list[str], second: datetime) -> None:
    """Every grant expires within ``second`` .. ``second`` + 1 s, spread evenly."""
    rows = [
        {"gid": gid, "exp": second + timedelta(seconds=i / len(ids))} for i, gid in enumerate(ids)
    ]
    statement = (
        update(GrantRow)
        .where(GrantRow.id == bindparam("gid"))
        .values(expires_at=bindparam("exp"))
        .execution_options(synchronize_session=False)
    )
    with app.database.engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(statement, rows[start : start + 1000])


def _count_revoked(app: Any) -> int:
    with app.database.engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count())
                .select_from(GrantRow)
                .where(GrantRow.state == GrantState.REVOKED.value)
            )
            or 0
        )


def _lags(app: Any) -> list[float]:
    with app.database.engine.connect() as conn:
        rows = conn.execute(
            select(GrantRow.expires_at, GrantRow.revoked_at).where(
                GrantRow.state == GrantState.REVOKED.value
            )
        ).all()
    return [(r.revoked_at - r.expires_at).total_seconds() for r in rows]


def run_storm(
    spec: StormSpec, database_url: str | None = None, profile: Path | None = None
) -> StormResult:
    """One storm; ``database_url`` is a fresh PostgreSQL database or None for SQLite.
    ``profile``: record worker 0 with py-spy into this file (collapsed stacks)."""
    with tempfile.TemporaryDirectory(prefix="jit-bench-") as tmp:
        return _run_storm(spec, Path(tmp), database_url, profile)


def _run_storm(  # noqa: PLR0915 - one storm, start to finish, reads best in one place
    spec: StormSpec, tmp: Path, database_url: str | None, profile: Path | None
) -> StormResult:
    url = database_url or f"sqlite:///{tmp / 'jitadmin.db'}"
    world = emulator_world(customers=customers(spec.tenants))
    throttle: WriteThrottle | None = None
    if spec.throttle_writes_per_s is not None:
        world.graph_app.add_middleware(
            WriteThrottle, state=world.graph, writes_per_s=spec.throttle_writes_per_s
        )
    world.start()
    worker_settings = {
        "worker_concurrency": spec.concurrency,
        "worker_per_tenant": spec.per_tenant,
    }
    app = build(
        Settings(
            data_dir=tmp,
            database_url=url,
            secret_key=SecretStr(SECRET_KEY),
            **worker_settings,  # type: ignore[arg-type]
        )
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        seed(app, world)
        t0 = time.monotonic()
        ids = _seed_grants(app, world, spec)
        log(f"{spec.label}: seeded {len(ids)} grants in {time.monotonic() - t0:.1f}s")
        admin = world.graph_settings(world.customers[0])["admin_url"]
        httpx.put(f"{admin}/faults", json={"latency_ms": spec.latency_ms}).raise_for_status()
        env = env_for(url, tmp, **worker_settings)
        for n in range(spec.workers):
            log_file = (tmp / f"worker{n}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    _worker_command(spec), env=env, stdout=log_file, stderr=log_file, cwd=ROOT
                )
            )
        spy: subprocess.Popen[bytes] | None = None
        if profile is not None:
            spy = subprocess.Popen(
                [str(Path(JITADMIN).parent / "py-spy"), "record", "--gil", "--format", "raw",
                 "-r", "100", "-o", str(profile), "--pid", str(procs[0].pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        time.sleep(4.0)  # let every worker start and settle into its idle sleep
        world.graph.faults.clear_journal()
        # A whole second ≥ 6 s away: beyond one idle poll (5 s), so every worker sleeps
        # until exactly that deadline rather than being woken by us.
        now = datetime.now(UTC)
        second = now.replace(microsecond=0) + timedelta(seconds=7)
        _set_expiry(app, ids, second)
        load_before = loadavg()
        cpu_before = sum(_proc_cpu(p.pid) for p in procs)
        own_cpu_before = time.process_time()
        if spec.throttle_writes_per_s is not None:
            throttle = WriteThrottle.instance
        deadline = time.monotonic() + (second - now).total_seconds() + spec.timeout_s
        revoked = 0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            revoked = _count_revoked(app)
            if revoked >= spec.grants:
                break
        wall = (datetime.now(UTC) - second).total_seconds()
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(30)
        worker_cpu = sum(_proc_cpu(p.pid) for p in procs) - cpu_before
        emulator_cpu = time.process_time() - own_cpu_before
        journal = world.graph.faults.journal_dicts()
        graph_calls = sum(1 for e in journal if e["path"].startswith("/v1.0"))
        token_calls = sum(1 for e in journal if e["path"].startswith("/login"))
        result = StormResult(
            spec=spec,
            lags_s=_lags(app),
            revoked=revoked,
            wall_s=wall,
            graph_calls=graph_calls,
            token_calls=token_calls,
            loadavg_before=load_before,
            loadavg_after=loadavg(),
            worker_cpu_s=worker_cpu,
            emulator_cpu_s=emulator_cpu,
        )
        if throttle is not None:
            result.throttle = throttle.report(spec.tenants)
            # Throttled writes never reach the journal; count them as Graph calls too.
            result.graph_calls += int(result.throttle["throttled"])
        s = result.summary()
        log(
            f"{spec.label}: {revoked}/{spec.grants} revoked, p50 {s['p50']:.2f}s "
            f"p99 {s['p99']:.2f}s max {s['max']:.2f}s floor {s['floor']:.2f}s, "
            f"{result.calls_per_revocation:.1f} calls/revocation, load {load_before}"
        )
        if revoked < spec.grants:
            for n in range(spec.workers):
                tail = (tmp / f"worker{n}.log").read_text(errors="replace")[-2000:]
                log(f"worker{n} log tail:\n{tail}")
        return result
    finally:
        for proc in procs:
            stop_process(proc)
        app.close()
        world.stop()


def _worker_command(spec: StormSpec) -> list[str]:
    if spec.ungated:
        return [str(Path(JITADMIN).parent / "python"), "-m", "bench.ungated_worker"]
    return [JITADMIN, "worker"]


def _proc_cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return math.nan
