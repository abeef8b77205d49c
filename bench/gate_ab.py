"""Before/after of the in-process SQLite write gate: the same storm, alternating a worker
without the gate (bench/ungated_worker.py) and the current `jitadmin worker`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from bench.common import ROOT, log
from bench.storm import StormSpec, run_storm

OUT = ROOT / ".run" / "bench" / "gate_ab.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grants", type=int, default=300)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    spec = StormSpec(args.grants, args.tenants, "sqlite", timeout_s=300)
    runs: list[dict[str, object]] = json.loads(OUT.read_text()) if OUT.exists() else []
    for _ in range(args.pairs):
        for variant in (replace(spec, ungated=True), spec):
            r = run_storm(variant)
            runs.append(
                {
                    "variant": "before (busy handler)" if variant.ungated else "after (gate)",
                    "grants": spec.grants,
                    "tenants": spec.tenants,
                    **r.summary(),
                    "revoked": r.revoked,
                    "worker_cpu_s": r.worker_cpu_s,
                    "loadavg": r.loadavg_before,
                }
            )
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(runs, indent=1))
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
