"""`make bench`: run the suite, keep raw results in .run/bench/results.json, write
docs/benchmarks.md (the hand-written bench/intro.md + generated tables).

    .venv/bin/python -m bench.run                 # everything (long: hours for the full matrix)
    .venv/bin/python -m bench.run --quick         # a smoke run with small N
    .venv/bin/python -m bench.run --only storm --grants 1000 --tenants 100 --db pg4
    .venv/bin/python -m bench.run --render        # only rewrite docs/benchmarks.md

Each invocation merges its results into the JSON file, so sections can be run separately.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict
from typing import Any

from bench.common import ROOT, log, machine, median, percentile, pg_database, start_postgres
from bench.footprint import run_footprint
from bench.report import render
from bench.request_path import run_request_path
from bench.storm import StormResult, StormSpec, run_storm

RESULTS = ROOT / ".run" / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
DB_CONFIGS = {"sqlite": ("sqlite", 1), "pg1": ("postgresql", 1), "pg2": ("postgresql", 2),
              "pg4": ("postgresql", 4)}  # fmt: skip
CALLS_PER_REVOCATION = 11  # measured; only used to skip hopeless matrix cells up front
MAX_FLOOR_S = 240.0


def _load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def _save(results: dict[str, Any]) -> None:
    """Merge into what is on disk, so separate invocations (sections, cells) add up."""
    merged = _load()
    for key, value in results.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "machine":
            merged[key].update(value)
        else:
            merged[key] = value
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(merged, indent=1, sort_keys=True))


def _storm_once(spec: StormSpec) -> StormResult:
    if spec.database == "postgresql":
        with pg_database(start_postgres()) as url:
            return run_storm(spec, url)
    return run_storm(spec)


def storm_cell(spec: StormSpec, repeats: int) -> dict[str, Any]:
    runs = [_storm_once(spec) for _ in range(repeats)]
    per_run = [r.summary() for r in runs]
    cell: dict[str, Any] = {
        "spec": asdict(spec),
        "allowed_concurrency": spec.allowed_concurrency,
        "runs": [
            {
                **summary,
                "revoked": r.revoked,
                "wall_s": r.wall_s,
                "calls_per_revocation": r.calls_per_revocation,
                "token_calls": r.token_calls,
                "worker_cpu_s": r.worker_cpu_s,
                "emulator_cpu_s": r.emulator_cpu_s,
                "loadavg": r.loadavg_before,
                "throttle": r.throttle,
            }
            for summary, r in zip(per_run, runs, strict=True)
        ],
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for key in ("p50", "p99", "max", "floor"):
        values = [s[key] for s in per_run]
        cell[key] = {"median": median(values), "p99": percentile(values, 99)}
    return cell


def _key(spec: StormSpec) -> str:
    throttle = f"-throttle{spec.throttle_writes_per_s}" if spec.throttle_writes_per_s else ""
    return f"{spec.database}x{spec.workers}-n{spec.grants}-t{spec.tenants}{throttle}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, one repetition")
    parser.add_argument("--only", default="storm,throttle,request,footprint")
    parser.add_argument("--grants", type=int, nargs="*", default=None)
    parser.add_argument("--tenants", type=int, nargs="*", default=None)
    parser.add_argument("--db", nargs="*", default=None, choices=sorted(DB_CONFIGS))
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-tenant", type=int, default=8)
    parser.add_argument("--render", action="store_true", help="only rewrite the document")
    args = parser.parse_args()
    # `timeout`/Ctrl-C: unwind, so the storms' finally blocks stop their worker processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Any] = {}
    results["machine"] = machine()
    sections = set(args.only.split(","))
    if not args.render:
        grants = args.grants or ([100] if args.quick else [100, 1000, 10000])
        tenants = args.tenants or ([10] if args.quick else [1, 10, 100])
        dbs = args.db or (["sqlite", "pg2"] if args.quick else list(DB_CONFIGS))
        repeats = args.repeats or (1 if args.quick else 3)
        if "storm" in sections:
            storms = results.setdefault("storms", {})
            for n in grants:
                for t in tenants:
                    for db in dbs:
                        database, workers = DB_CONFIGS[db]
                        spec = StormSpec(
                            n, t, database, workers, args.concurrency, args.per_tenant,
                            timeout_s=3 * MAX_FLOOR_S,
                        )  # fmt: skip
                        floor = n * CALLS_PER_REVOCATION * 0.02 / spec.allowed_concurrency
                        if floor > MAX_FLOOR_S:
                            log(f"skip {spec.label}: its floor alone is {floor:.0f} s")
                            continue
                        reps = 1 if n >= 10000 else repeats
                        storms[_key(spec)] = storm_cell(spec, reps)
                        _save(results)
        if "throttle" in sections:
            # A limit that bites at the pace one worker reaches on 2 cores (20/s never did).
            spec = StormSpec(
                40, 4, "sqlite", 1, args.concurrency, args.per_tenant,
                throttle_writes_per_s=5, timeout_s=300,
            )  # fmt: skip
            results.setdefault("throttle", {})[_key(spec)] = storm_cell(spec, repeats)
            _save(results)
        if "request" in sections:
            runs = [
                run_request_path(duration_s=5.0 if args.quick else 10.0) for _ in range(repeats)
            ]
            results["request"] = {
                "runs": [asdict(r) for r in runs],
                "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
            _save(results)
        if "footprint" in sections:
            history = 10_000 if args.quick else 100_000
            window = 10.0 if args.quick else 30.0
            results["footprint"] = asdict(run_footprint(history, window))
            _save(results)
    DOC.write_text(render(_load() if RESULTS.exists() else results))
    log(f"wrote {DOC}")


if __name__ == "__main__":
    main()
