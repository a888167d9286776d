"""Benchmark of reservoir.timing: statistics without Monte-Carlo p-values on 10^7 events (target >= 1 M
events/s on one core) and the time per stream with Monte-Carlo p-values (cold null cache and warm).

    .venv/bin/python benchmarks/bench_stats.py [--events 10000000] [--mc-events 2000 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

# one core, as the target says (set before numpy loads its BLAS)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from reservoir.timing import compute_stream, decide, nulls, synth  # noqa: E402


def _time(fn: Any, repeat: int = 1) -> tuple[float, float]:
    """Best (wall s, CPU s) over ``repeat`` runs; CPU time is the fairer figure on a shared machine."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def _row(case: str, events: int, t: tuple[float, float]) -> dict[str, Any]:
    wall, cpu = t
    return {"case": case, "events": events, "wall_s": wall, "cpu_s": cpu, "events_per_cpu_s": events / cpu}


def run(events: int, mc_events: list[int], repeat: int) -> list[dict[str, Any]]:
    """Rows of the benchmark table."""
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    t = synth.poisson(events, 5.0, rng)
    rows.append(_row("no MC p-values", events, _time(lambda: decide([compute_stream(t, mc=False)]), repeat)))
    for n in mc_events:
        ts = synth.poisson(n, 5.0, rng)
        nulls._null_tables.cache_clear()
        cold = _time(lambda ts=ts: decide([compute_stream(ts)]))
        warm = _time(lambda ts=ts: decide([compute_stream(ts)]), repeat)
        rows.append(_row("MC p-values, cold null cache", n, cold))
        rows.append(_row("MC p-values, warm null cache", n, warm))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=10_000_000, help="events for the no-MC case")
    ap.add_argument("--mc-events", type=int, nargs="*", default=[2000, 20_000], help="stream sizes with MC")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = ap.parse_args(argv)
    rows = run(args.events, args.mc_events, args.repeat)
    if args.json:
        print(json.dumps({"benchmark": "stats", "target_events_per_s": 1e6, "rows": rows}))
        return 0
    print(f"{'case':<30} {'events':>10} {'wall s':>8} {'CPU s':>8} {'events/CPU s':>13}")
    for r in rows:
        cells = f"{r['wall_s']:>8.3f} {r['cpu_s']:>8.3f} {r['events_per_cpu_s']:>13.3g}"
        print(f"{r['case']:<30} {r['events']:>10} {cells}")
    fast = rows[0]["events_per_cpu_s"]
    verdict = "ok" if fast >= 1e6 else "BELOW"
    print(f"no-MC throughput {fast / 1e6:.2f} M events per CPU-second (target >= 1 M/s): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
