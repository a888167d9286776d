"""Scrape time of ``/metrics`` with 4 boards x 128 chips, and the cost of the state fold per event.

    .venv/bin/python benchmarks/bench_metrics.py [--boards 4] [--chips 128] [--scrapes 200] [--json]

1. ``render``: building and formatting every family from :class:`DaemonState` (what one scrape costs the
   event loop), median and p99 over ``--scrapes``.
2. HTTP: ``GET /metrics`` through aiohttp on 127.0.0.1 in the same loop (client and server share the
   core, so this is an upper bound), median and p99.
3. Ingest effect: ``update_from_events`` throughput (rows/s) alone, and with one scrape per second of
   simulated ingest at 4 x 28,400 rows/s interleaved (a 1 s scrape interval, 15x the Prometheus default
   rate), as the event loop would run them; the CPU share of scraping at that rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.events import Pipeline, make_event_batch
from daemon.http import HttpServer, make_app
from daemon.metrics import make_registry, render
from daemon.state import DaemonState, PlanProgress

#: Four 3.125 Mbaud links at line rate (docs/protocol.md: 28,400 replies/s each).
LINE_RATE_4_LINKS = 4 * 28_400


def build_state(boards: int, chips: int, seed: int = 0) -> tuple[DaemonState, list[Any]]:
    """A fed state plus a list of 64-row batches to keep feeding it."""
    rng = np.random.default_rng(seed)
    state = DaemonState(version="bench")
    p = Pipeline()
    state.pipeline = p
    p.add_listener("state", state.update_from_events)
    p.subscribe("recorder", 16)
    batches = []
    t = 0
    for k in range(boards):
        b = state.add_board(f"b{k}", "emulator", chips)
        b.connected, b.status = True, "connected"
        b.set_setpoint(1.2, 485.0, 256.0)
        b.chip_temp_c, b.vr_temp_c, b.power_w, b.vin_v, b.fan_rpm = 55.0, 60.0, 15.0, 5.0, 4000.0
        b.plan = PlanProgress("sweep", i=3, n=10, eta_s=100.0)
    for i in range(2000):
        n = 64
        ts = t + np.cumsum(rng.integers(1_000, 60_000, n)).astype(np.int64)
        t = int(ts[-1])
        batches.append(
            make_event_batch(
                f"b{i % boards}", t_host_ns=ts, t_ns=ts, chip=rng.integers(0, chips, n), core=0, small_core=0,
                job_id=0, nonce=rng.integers(0, 2**32, n), valid=rng.random(n) > 0.05, voltage_v=1.2,
                freq_mhz=485.0, ticket_diff=256.0, read_id=i,
            )
        )  # fmt: skip
    for b in batches:
        p.publish(b)
    return state, batches


def quantiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"median_ms": statistics.median(s) * 1e3, "p99_ms": s[int(0.99 * (len(s) - 1))] * 1e3}


def bench_render(state: DaemonState, scrapes: int) -> dict[str, float]:
    reg = make_registry(state)
    body, _ = render(reg)
    times = []
    for _ in range(scrapes):
        t0 = time.perf_counter()
        render(reg)
        times.append(time.perf_counter() - t0)
    return {**quantiles(times), "body_bytes": len(body), "lines": body.count(b"\n")}


async def bench_http(state: DaemonState, scrapes: int) -> dict[str, float]:
    times = []
    async with HttpServer(make_app(state), port=0) as srv, aiohttp.ClientSession() as session:
        for _ in range(scrapes):
            t0 = time.perf_counter()
            async with session.get(srv.url + "/metrics") as r:
                await r.read()
            times.append(time.perf_counter() - t0)
    return quantiles(times)


def bench_ingest(state: DaemonState, batches: list[Any], scrape: bool) -> dict[str, float]:
    """Fold every batch; with ``scrape``, render once per second of line-rate ingest (4 links)."""
    reg = make_registry(state)
    rows_per_scrape = LINE_RATE_4_LINKS
    rows = since = 0
    t0 = time.perf_counter()
    for _ in range(20):
        for b in batches:
            state.update_from_events(b.column("board").dictionary[0].as_py(), b)
            rows += b.num_rows
            since += b.num_rows
            if scrape and since >= rows_per_scrape:
                render(reg)
                since = 0
    dt = time.perf_counter() - t0
    return {"rows_per_s": rows / dt, "x_line_rate_4_links": rows / dt / LINE_RATE_4_LINKS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=4)
    ap.add_argument("--chips", type=int, default=128)
    ap.add_argument("--scrapes", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    state, batches = build_state(args.boards, args.chips)
    result = {
        "boards": args.boards,
        "chips": args.chips,
        "render": bench_render(state, args.scrapes),
        "http": asyncio.run(bench_http(state, args.scrapes)),
        "ingest_alone": bench_ingest(state, batches, scrape=False),
        "ingest_with_scrapes": bench_ingest(state, batches, scrape=True),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    r, h = result["render"], result["http"]
    a, w = result["ingest_alone"], result["ingest_with_scrapes"]
    print(
        f"scrape {args.boards} boards x {args.chips} chips: {r['lines']:,} lines, "
        f"{r['body_bytes'] / 1024:.0f} KiB; render median {r['median_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms; "
        f"HTTP GET median {h['median_ms']:.1f} ms p99 {h['p99_ms']:.1f} ms"
    )
    print(
        f"state fold {a['rows_per_s']:,.0f} rows/s alone ({a['x_line_rate_4_links']:.1f}x the line rate of 4 "
        f"links); {w['rows_per_s']:,.0f} rows/s with a scrape per second of line-rate ingest "
        f"({w['x_line_rate_4_links']:.1f}x); one scrape per second = {r['median_ms'] / 10:.1f} % of a core"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
