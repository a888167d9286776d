"""Soak: the whole daemon (supervisors, decoder, pipeline, recorder, HTTP) on emulated boards in firehose mode
for a fixed number of events, sampling RSS, open file descriptors and asyncio tasks; fails on growth.

The emulated boards run in the same process (their memory and tasks count too: a leak in either shows).
Each board's chain emits ``--rate`` random nonce replies/s once brought up (the link at 1 Mbaud carries at
most ~9,000 replies/s, bm1366.md "Rates"). ``/metrics`` and ``/status`` are scraped every sample. Finished
recording segments are deleted as they appear (``--keep-recordings`` keeps them) so a 10^8-event run needs
only a few segments of disk; the recorder still writes, rotates and fsyncs everything.

Warm-up is the first ``--warmup`` fraction of the events; growth compares the median of the first three
samples after warm-up with the median of the last three. Pass: RSS growth <= ``--max-growth`` (5 %), open
fds and tasks not above their post-warm-up value plus ``--slack`` (2).

Run: ``.venv/bin/python benchmarks/soak.py --quick`` (10^6 events, about a minute) or
``.venv/bin/python benchmarks/soak.py`` (10^8 events: ~3 h at 9,000 events/s per board on 2 boards).
Add ``--json`` for a machine-readable summary. Exit status 0 = pass, 1 = growth over the limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa

from daemon.app import Daemon
from daemon.config import parse_config

#: Events for the full run (issue 9: >= 10^8) and for --quick.
FULL_EVENTS = 100_000_000
QUICK_EVENTS = 1_000_000
#: Sampling period (s) and the pass limits (issue 9: "no growth beyond a few percent after warm-up").
SAMPLE_S = 2.0
MAX_RSS_GROWTH = 0.05
SLACK = 2

CONFIG: dict[str, Any] = {
    "timing": {"status_interval_s": 30.0, "telemetry_interval_s": 1.0, "silence_timeout_s": 60.0},
    "recorder": {"flush_interval_s": 1.0, "fsync_interval_s": 10.0, "segment_bytes": 8 * 1024 * 1024},
    "plans": [{"name": "soak", "kind": "hold", "hold_ticket_diff": 1.0}],
}


def rss_kib() -> int:
    """Resident set size of this process, KiB (/proc/self/status VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _scrape(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as r:
        return len(r.read())


async def soak(
    events: int, boards: int, rate: float, warmup: float, keep: bool, state: Path, trace: bool = False
) -> dict[str, Any]:
    cfg = parse_config(CONFIG)
    d = Daemon(cfg, state_dir=state, http=("127.0.0.1", 0), simulate=boards)
    run = asyncio.create_task(d.run())
    samples: list[dict[str, float]] = []
    t0 = time.monotonic()
    deleted = 0
    snap: tracemalloc.Snapshot | None = None
    growth: list[str] = []
    try:
        while not d.boards or any(b.nonces_total == 0 for b in d.state.boards.values()):
            if run.done():
                raise RuntimeError(f"daemon ended early (exit {run.result()})")
            await asyncio.sleep(0.2)
        for sb in d.sim_boards:
            sb.board.core.firehose_rate = rate
        assert d.http is not None
        base = f"http://127.0.0.1:{d.http.port}"
        while True:
            await asyncio.sleep(SAMPLE_S)
            n = sum(b.nonces_total for b in d.state.boards.values())
            await asyncio.to_thread(_scrape, f"{base}/metrics")
            await asyncio.to_thread(_scrape, f"{base}/status")
            if not keep:
                for seg in (state / "recordings").glob("*/events-*.arrows"):
                    seg.unlink()
                    deleted += 1
            s = {
                "t_s": time.monotonic() - t0,
                "events": float(n),
                "rss_kib": float(rss_kib()),
                "fds": float(open_fds()),
                "tasks": float(len(asyncio.all_tasks())),
                "arrow_kib": pa.total_allocated_bytes() / 1024,
                "py_blocks": float(sys.getallocatedblocks()),
            }
            samples.append(s)
            print(
                f"{s['t_s']:8.1f} s {n:>12,d} events  rss {s['rss_kib'] / 1024:7.1f} MiB"
                f"  fds {s['fds']:.0f}  tasks {s['tasks']:.0f}  arrow {s['arrow_kib'] / 1024:.1f} MiB"
                f"  py blocks {s['py_blocks']:.0f}",
                file=sys.stderr,
            )
            if trace and snap is None and n >= warmup * events:
                snap = tracemalloc.take_snapshot()
            if n >= events or run.done():
                break
        if snap is not None:
            diff = tracemalloc.take_snapshot().compare_to(snap, "lineno")
            growth = [str(st) for st in diff[:12]]
    finally:
        d.request_stop()
        code = await run
    elapsed = time.monotonic() - t0
    after = [s for s in samples if s["events"] >= warmup * events]
    if len(after) < 6:
        after = samples[len(samples) // 3 :]
    first, last = after[:3], after[-3:]

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    rss_growth = med(last, "rss_kib") / med(first, "rss_kib") - 1.0
    rec = d.state.recorder
    total = int(samples[-1]["events"]) if samples else 0
    result: dict[str, Any] = {
        "events": total,
        "seconds": round(elapsed, 1),
        "events_per_s": round(total / elapsed),
        "boards": boards,
        "samples": len(samples),
        "rss_mib_first": round(med(first, "rss_kib") / 1024, 1),
        "rss_mib_last": round(med(last, "rss_kib") / 1024, 1),
        "rss_growth": round(rss_growth, 4),
        "arrow_mib_first": round(med(first, "arrow_kib") / 1024, 1),
        "arrow_mib_last": round(med(last, "arrow_kib") / 1024, 1),
        "py_blocks_first": med(first, "py_blocks"),
        "py_blocks_last": med(last, "py_blocks"),
        "fds_first": med(first, "fds"),
        "fds_last": med(last, "fds"),
        "fds_max": max(s["fds"] for s in after),
        "tasks_first": med(first, "tasks"),
        "tasks_last": med(last, "tasks"),
        "tasks_max": max(s["tasks"] for s in after),
        "recorder_rows": rec.rows,
        "recorder_dropped": rec.error_dropped_rows,
        "pipeline_dropped": d.pipeline.dropped_rows,
        "segments_deleted": deleted,
        "exit_code": code,
    }
    if trace:
        result["tracemalloc_top_growth"] = growth
    return result


def verdict(r: dict[str, Any], max_growth: float, slack: int) -> list[str]:
    """Reasons the soak failed (empty = pass)."""
    bad = []
    if r["rss_growth"] > max_growth:
        bad.append(f"RSS grew {r['rss_growth']:.1%} > {max_growth:.0%}")
    if r["fds_last"] > r["fds_first"] + slack:
        bad.append(f"open fds {r['fds_first']:.0f} -> {r['fds_last']:.0f}")
    if r["tasks_last"] > r["tasks_first"] + slack:
        bad.append(f"asyncio tasks {r['tasks_first']:.0f} -> {r['tasks_last']:.0f}")
    if r["pipeline_dropped"] or r["recorder_dropped"]:
        bad.append(f"rows dropped: pipeline {r['pipeline_dropped']}, recorder {r['recorder_dropped']}")
    if r["exit_code"] != 0:
        bad.append(f"daemon exit code {r['exit_code']}")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=FULL_EVENTS)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events (smoke run)")
    ap.add_argument("--boards", type=int, default=2)
    ap.add_argument("--rate", type=float, default=9_000.0, help="firehose replies/s per board")
    ap.add_argument("--warmup", type=float, default=0.2, help="fraction of the events counted as warm-up")
    ap.add_argument("--max-growth", type=float, default=MAX_RSS_GROWTH)
    ap.add_argument("--slack", type=int, default=SLACK)
    ap.add_argument("--keep-recordings", action="store_true")
    ap.add_argument("--state-dir", type=Path, default=None, help="default: a temporary directory")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tracemalloc", action="store_true", help="report the source lines whose memory grew")
    a = ap.parse_args(argv)
    events = QUICK_EVENTS if a.quick else a.events
    with tempfile.TemporaryDirectory(prefix="asicrc-soak-") as tmp:
        state = a.state_dir or Path(tmp)
        if a.tracemalloc:
            tracemalloc.start(1)
        r = asyncio.run(soak(events, a.boards, a.rate, a.warmup, a.keep_recordings, state, a.tracemalloc))
    bad = verdict(r, a.max_growth, a.slack)
    r["pass"] = not bad
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        for k, v in r.items():
            if isinstance(v, list):
                print(f"{k:>18}:", *v, sep="\n    ")
            else:
                print(f"{k:>18}: {v}")
        print("PASS" if not bad else "FAIL: " + "; ".join(bad))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
