"""Helpers shared by the benchmarks: statistics, machine description, databases, processes."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from jitadmin.emulators.seed import SeedCustomer, SeedTicket

ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = "bench-secret-key-" + "b" * 32
JITADMIN = str(ROOT / ".venv" / "bin" / "jitadmin")
# The emulators listen on plain http on loopback: the egress policy must allow it, in this
# process (Settings) and in every jitadmin subprocess (env_for copies the environment).
os.environ.setdefault("JITADMIN_EGRESS_ALLOW", "127.0.0.0/8,::1,localhost")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(round(q / 100 * len(ordered) + 0.5) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    try:
        pg = subprocess.run(
            [*_pg_bin("postgres"), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        pg = "not installed"
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu model": cpu,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg or "unknown",
    }


def _pg_bin(name: str) -> list[str]:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return [str(found[-1])] if found else [name]


def start_postgres() -> str:
    """The benchmarks' own PostgreSQL server (bench/pg.sh); returns its admin URL."""
    out = subprocess.run(
        ["/bin/bash", str(ROOT / "bench" / "pg.sh"), "start"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the bench server, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def customers(count: int) -> tuple[SeedCustomer, ...]:
    """``count`` emulated tenants, each with one open ticket."""
    return tuple(
        SeedCustomer(
            slug=f"tenant{i:03d}",
            name=f"Tenant {i:03d}",
            tenant_id=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"tenant{i}.bench")),
            domain=f"tenant{i:03d}.onmicrosoft.com",
            psa_company_id=1000 + i,
            psa_identifier=f"Tenant{i:03d}",
            tickets=(SeedTicket(60000 + i, "Benchmark ticket", "In Progress", False),),
        )
        for i in range(count)
    )


def env_for(database_url: str, data_dir: Path, **settings: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "JITADMIN_DATABASE_URL": database_url,
            "JITADMIN_SECRET_KEY": SECRET_KEY,
            "JITADMIN_DATA_DIR": str(data_dir),
        }
    )
    env.update({f"JITADMIN_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children are not counted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
