"""docs/benchmarks.md from the raw results: bench/intro.md (hand-written) + generated tables."""

from __future__ import annotations

import math
from typing import Any

from bench.common import ROOT, median, percentile

INTRO = ROOT / "bench" / "intro.md"
FINDINGS = ROOT / "bench" / "findings.md"  # hand-written: targets, misses, fixes


def _f(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _pair(values: list[float], digits: int = 2) -> str:
    """'median (p99)' over repeated runs; just the value when there was one run."""
    if len(values) == 1:
        return _f(values[0], digits)
    return f"{_f(median(values), digits)} ({_f(percentile(values, 99), digits)})"


def _per_revocation_ms(run: dict[str, Any], key: str) -> float:
    return 1000 * float(run.get(key, math.nan)) / max(int(run["revoked"]), 1)


def _storm_table(cells: dict[str, Any]) -> list[str]:
    lines = [
        "| database x workers | N | tenants | conc. | runs | p50 lag s | p99 lag s | max lag s "
        "| floor s | p99 ÷ floor | calls/rev. | worker CPU s | CPU ms/rev. "
        "| emulator CPU ms/rev. | load avg (1/5/15) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(
        cells.values(),
        key=lambda c: (c["spec"]["grants"], c["spec"]["tenants"], c["spec"]["database"],
                       c["spec"]["workers"]),
    )  # fmt: skip
    for cell in order:
        spec, runs = cell["spec"], cell["runs"]
        ratio = [r["p99"] / r["floor"] for r in runs if r["floor"]]
        incomplete = [r for r in runs if r["revoked"] < spec["grants"]]
        note = f" ⚠ {incomplete[0]['revoked']}/{spec['grants']} done" if incomplete else ""
        lines.append(
            f"| {spec['database']} x {spec['workers']} | {spec['grants']} | {spec['tenants']} "
            f"| {cell['allowed_concurrency']} | {len(runs)} "
            f"| {_pair([r['p50'] for r in runs])} | {_pair([r['p99'] for r in runs])}{note} "
            f"| {_pair([r['max'] for r in runs])} | {_pair([r['floor'] for r in runs])} "
            f"| {_pair(ratio, 1)} | {_pair([r['calls_per_revocation'] for r in runs], 1)} "
            f"| {_pair([r['worker_cpu_s'] for r in runs], 1)} "
            f"| {_pair([1000 * r['worker_cpu_s'] / max(r['revoked'], 1) for r in runs], 0)} "
            f"| {_pair([_per_revocation_ms(r, 'emulator_cpu_s') for r in runs], 0)} "
            f"| {', '.join(r['loadavg'] for r in runs)} |"
        )
    return lines


def _throttle_table(cells: dict[str, Any]) -> list[str]:
    lines = [
        "| N | tenants | limit (writes/s/tenant) | completion s | limit minimum s | ratio "
        "| 429s | early, same call | early, other call | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells.values():
        spec = cell["spec"]
        for run in cell["runs"]:
            t = run["throttle"]
            completion = run["max"]
            lines.append(
                f"| {spec['grants']} | {spec['tenants']} | {t['limit_per_tenant_s']} "
                f"| {_f(completion)} | {_f(t['min_s'])} | {_f(completion / t['min_s'], 1)} "
                f"| {t['throttled']} | {t['early_same_request']} | {t['early_other_request']} "
                f"| {run['loadavg']} |"
            )
    return lines


def _request_lines(request: dict[str, Any]) -> list[str]:
    runs = request["runs"]
    p50 = [percentile(r["post_latencies_ms"], 50) for r in runs]
    p99 = [percentile(r["post_latencies_ms"], 99) for r in runs]
    rps = [r["post_rps"] for r in runs]
    form50 = [percentile(r["form_ms"], 50) for r in runs]
    form99 = [percentile(r["form_ms"], 99) for r in runs]
    t50 = [percentile(r["tickets_ms"], 50) for r in runs]
    t99 = [percentile(r["tickets_ms"], 99) for r in runs]
    errors = sum(r["post_errors"] for r in runs)
    return [
        "| measure | result: median (p99) over runs | target |",
        "|---|---|---|",
        f"| POST /api/v1/grants p50, one client | {_pair(p50, 1)} ms | |",
        f"| POST /api/v1/grants p99, one client | {_pair(p99, 1)} ms | ≤ 25 ms |",
        f"| POST /api/v1/grants sustained, {runs[0]['clients']} clients | {_pair(rps, 0)} "
        "requests/s | ≥ 300 requests/s |",
        f"| GET / (request form), PSA at 200 ms: p50 / p99 | {_pair(form50, 0)} / "
        f"{_pair(form99, 0)} ms | ≤ 100 ms |",
        f"| GET /web/api/customers/…/tickets, PSA at 200 ms: p50 / p99 | {_pair(t50, 0)} / "
        f"{_pair(t99, 0)} ms | (waits for the PSA by design) |",
        f"| failed POSTs | {errors} | 0 |",
        "",
        f"{len(runs)} run(s); load average at start: "
        + ", ".join(r["loadavg"] for r in runs)
        + f"; measured {request['at']}.",
    ]


def _footprint_lines(fp: dict[str, Any]) -> list[str]:
    return [
        "| measure | result | target |",
        "|---|---|---|",
        f"| RSS of `jitadmin serve`, idle, empty history | {fp['rss_idle_mib']:.1f} MiB | |",
        f"| RSS, idle, {fp['history']:,} grants in history | {fp['rss_history_mib']:.1f} MiB "
        "| no growth with history |",
        f"| RSS after 5 x GET /api/v1/grants (admin) | "
        f"{fp['rss_history_after_requests_mib']:.1f} MiB | |",
        f"| CPU while idle, empty history ({fp['window_s']:.0f} s) | "
        f"{fp['idle_cpu_pct']:.2f} % of one core | ≤ 1 % |",
        f"| CPU while idle, {fp['history']:,} grants | {fp['idle_cpu_history_pct']:.2f} % "
        "of one core | ≤ 1 % |",
        "",
        f"Load average at start: {fp['loadavg']}.",
    ]


def render(results: dict[str, Any]) -> str:
    out = [INTRO.read_text().rstrip(), "", "## Machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in results.get("machine", {}).items()]
    if results.get("storms"):
        out += ["", "## 1. Expiry storm (generated)", "", *_storm_table(results["storms"])]
    if results.get("throttle"):
        out += ["", "## 2. Throttled storm (generated)", "", *_throttle_table(results["throttle"])]
    if results.get("request"):
        out += ["", "## 3. Request path (generated)", "", *_request_lines(results["request"])]
    if results.get("footprint"):
        out += ["", "## 4. Footprint (generated)", "", *_footprint_lines(results["footprint"])]
    if FINDINGS.exists():
        out += ["", FINDINGS.read_text().rstrip()]
    return "\n".join(out) + "\n"
