"""How long a real Prometheus takes to answer each asicrc dashboard (every panel query, as one refresh does).

A daemon-shaped /metrics (``boards`` x ``chips`` of synthetic state, served by the daemon's aiohttp app) is
scraped every second by a local ``prometheus`` on a free loopback port; once the rate windows hold data, each
dashboard's queries are run ``--repeat`` times as instant queries and as range queries over the data so far
(step 1 s), sequentially. Prints the median wall time per dashboard refresh and the scrape duration::

    .venv/bin/python grafana/bench_queries.py [--boards 4] [--chips 128] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.system.prom_fixture import MetricsServer, start_prometheus, synthetic_state  # noqa: E402
from tests.unit.grafana.test_grafana_json import load_dashboards, panel_queries, substitute  # noqa: E402

#: Seconds of scraped data before timing: $__rate_interval (5 s here) needs a few 1 s scrapes.
WARMUP_S = 8.0
RATE_INTERVAL = "5s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--boards", type=int, default=4)
    ap.add_argument("--chips", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    server = MetricsServer(synthetic_state(boards=args.boards, chips=args.chips)).start()
    with tempfile.TemporaryDirectory() as tmp:
        prom = start_prometheus(Path(tmp), [server.target])
        try:
            prom.wait_up()
            t0 = time.time()
            time.sleep(WARMUP_S)
            values = {"instance": server.target, "board": "emu0", "__rate_interval": RATE_INTERVAL}
            print(
                f"{args.boards} boards x {args.chips} chips, {args.repeat} refreshes, median ms per refresh"
            )
            print(f"{'dashboard':<16} {'queries':>7} {'instant':>9} {'range':>9} {'series':>7}")
            for dash in load_dashboards().values():
                exprs = [substitute(t["expr"], values) for _, t in panel_queries(dash)]
                inst, rng, series = [], [], 0
                for _ in range(args.repeat):
                    a = time.perf_counter()
                    series = sum(len(prom.query(e)) for e in exprs)
                    b = time.perf_counter()
                    end = str(time.time())
                    for e in exprs:
                        prom.api("query_range", query=e, start=str(t0), end=end, step="1")
                    c = time.perf_counter()
                    inst.append((b - a) * 1e3)
                    rng.append((c - b) * 1e3)
                med_i, med_r = statistics.median(inst), statistics.median(rng)
                print(f"{dash['uid']:<16} {len(exprs):>7} {med_i:>9.1f} {med_r:>9.1f} {series:>7}")
            scrape = prom.query("scrape_duration_seconds")
            print(f"scrape of /metrics by prometheus: {float(scrape[0]['value'][1]) * 1e3:.1f} ms")
        finally:
            prom.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
