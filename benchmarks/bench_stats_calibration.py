"""Calibration of ``asicrc analyze`` on known truth delivered through a busy serial reader: for each delivery
(link wire-end times; reads with a mean scheduling latency of 0.1-5 ms, serialization spacing off and on),
the share of seeds called right per source (reservoir/timing/calibration.py; docs/analyze.md).

    .venv/bin/python benchmarks/bench_stats_calibration.py [--seeds 200] [--power-seeds 200]
        [--extra-seeds 50] [--events 20000] [--json]

Targets: Poisson called ``poisson`` or ``artifact`` in >= 95 % of the seeds at every latency; a 5 ms dead
time and a +-40 % modulation with a 2 s period called ``non-poisson`` with the right kind in >= 90 %.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from reservoir.timing import calibration as cal  # noqa: E402

#: source -> (which seed count applies, target share)
TARGETS: dict[str, tuple[str, float | None]] = {
    "poisson": ("seeds", 0.95),
    "dead-time-5ms": ("power_seeds", 0.90),
    "modulation-40%-2s": ("power_seeds", 0.90),
    "drift-50%-400s": ("extra_seeds", None),
    "serial-correlation": ("extra_seeds", None),
}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (delivery, source): seeds, hits, share, target, the calls' tally and CPU seconds."""
    rows: list[dict[str, Any]] = []
    for d in cal.deliveries():
        for src, (which, target) in TARGETS.items():
            seeds = getattr(args, which)
            if seeds <= 0:
                continue
            tally: collections.Counter[str] = collections.Counter()
            ok = 0
            c0 = time.process_time()
            for s in range(seeds):
                r = cal.analyse(src, d, s, args.events)
                ok += cal.correct(src, r)
                tally[f"{r.verdict}:{r.kind}"] += 1
            rows.append(
                {
                    "delivery": d.label,
                    "latency_ms": d.latency_s * 1e3,
                    "spacing_us": d.spacing_ns / 1e3,
                    "source": src,
                    "seeds": seeds,
                    "right": ok,
                    "share": ok / seeds,
                    "target": target,
                    "pass": None if target is None else ok / seeds >= target,
                    "calls": dict(tally.most_common()),
                    "cpu_s": time.process_time() - c0,
                }
            )
            if not args.json:
                print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict[str, Any]) -> str:
    tgt = "" if r["target"] is None else f">= {r['target']:.0%} {'ok' if r['pass'] else 'FAIL'}"
    calls = ", ".join(f"{k} {v}" for k, v in r["calls"].items())
    return (
        f"{r['delivery']:<44} {r['source']:<20} {r['right']:>4}/{r['seeds']:<4} {r['share']:>6.1%} "
        f"{tgt:<10} [{calls}]"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seeds", type=int, default=200, help="seeds per delivery for the Poisson source")
    ap.add_argument("--power-seeds", type=int, default=200, help="seeds for the dead time and modulation")
    ap.add_argument("--extra-seeds", type=int, default=50, help="seeds for drift and serial correlation")
    ap.add_argument("--events", type=int, default=cal.N_EVENTS, help="events per stream")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"wall {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.2f}")
    return 0 if all(r["pass"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
