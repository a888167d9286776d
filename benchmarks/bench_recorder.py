"""Recorder throughput with the daemon's flush policy, and recovery time of a torn segment.

    .venv/bin/python benchmarks/bench_recorder.py [--rows 2000000] [--batch 64] [--dir DIR] [--json]

1. Ingest: ``--rows`` event rows in batches of ``--batch`` rows (one transport read's worth) go through a
   :class:`Pipeline` into :meth:`Recorder.run` with the default policy (flush every 1 s, fsync every 5 s,
   64 MiB segments). Reports rows/s and bytes/s end to end (publish -> fsynced, renamed segments), CPU
   seconds per million rows, bytes per row, and the ratio to 4 links at 3.125 Mbaud line rate
   (4 x 28,400 replies/s, docs/protocol.md).
2. Recovery: a 64 MiB segment is torn mid-batch (as SIGKILL or a power cut leaves it) and recovered with
   :func:`recover_segment`; reports the time and the rows kept.

Runs in a temporary directory on the same file system as ``--dir`` (default: the system temp dir).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.events import Pipeline, make_event_batch
from daemon.recorder import Recorder, RecorderPolicy
from daemon.recording import read_table, recover_segment, segments

#: Four 3.125 Mbaud links at line rate (docs/protocol.md: 28,400 replies/s each).
LINE_RATE_4_LINKS = 4 * 28_400


def make_batches(rows: int, batch: int, seed: int = 3) -> list[Any]:
    """Pre-built event batches (building them is the supervisor's cost, not the recorder's)."""
    rng = np.random.default_rng(seed)
    out = []
    t = 0
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        ts = t + np.cumsum(rng.integers(1_000, 100_000, n)).astype(np.int64)
        t = int(ts[-1])
        out.append(
            make_event_batch(
                f"emu{(start // batch) % 4}", t_host_ns=ts, t_ns=ts - 50, chip=rng.integers(0, 128, n),
                core=rng.integers(0, 112, n), small_core=rng.integers(0, 4, n),
                job_id=(start // batch % 16) * 8,
                nonce=rng.integers(0, 2**32, n), version_bits=rng.integers(0, 2**16, n),
                share_diff=rng.exponential(512.0, n), valid=rng.random(n) > 0.02, voltage_v=1.2,
                freq_mhz=485.0, ticket_diff=256.0, read_id=start // batch, point=3,
            )
        )  # fmt: skip
    return out


async def ingest(run_dir: Path, batches: list[Any], policy: RecorderPolicy) -> dict[str, float]:
    pipeline = Pipeline()
    sub = pipeline.subscribe("recorder", maxsize=len(batches) + 1)
    rec = Recorder(run_dir, policy=policy, boards=[f"emu{i}" for i in range(4)])
    t0, c0 = time.perf_counter(), time.process_time()
    task = asyncio.create_task(rec.run(sub))
    for i, b in enumerate(batches):
        pipeline.publish(b)
        if i % 256 == 0:
            await asyncio.sleep(0)  # let the consumer run, as the event loop would between reads
    pipeline.close()
    await task
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = rec.stats.rows
    return {
        "rows": rows,
        "bytes": rec.stats.bytes,
        "segments": len(segments(run_dir)),
        "seconds": wall,
        "rows_per_s": rows / wall,
        "bytes_per_s": rec.stats.bytes / wall,
        "bytes_per_row": rec.stats.bytes / rows,
        "cpu_s_per_million_rows": cpu / rows * 1e6,
        "x_line_rate_4_links": rows / wall / LINE_RATE_4_LINKS,
        "dropped_rows": pipeline.dropped_rows + rec.stats.error_dropped_rows,
    }


def recovery(run_dir: Path, target_bytes: int) -> dict[str, float]:
    """Write a segment of about ``target_bytes`` with one batch per flush, tear it, recover it."""
    boards = [f"emu{i}" for i in range(4)]
    rec = Recorder(run_dir, policy=RecorderPolicy(segment_bytes=2**40, fsync_interval_s=3600), boards=boards)
    rec.open()
    batches = make_batches(4096 * 64, 4096, seed=5)
    while rec.stats.bytes < target_bytes:
        for b in batches:
            rec.add(b)
            rec.flush()
            if rec.stats.bytes >= target_bytes:
                break
    part = next(run_dir.glob("events-*.arrows.part"))
    size = part.stat().st_size
    with open(part, "r+b") as f:  # tear the last batch in half, as a crash mid-write does
        f.truncate(size - 20_000)
    t0 = time.perf_counter()
    found = recover_segment(part)
    seconds = time.perf_counter() - t0
    assert found.path is not None and len(segments(run_dir)) == 1
    assert read_table(run_dir).num_rows == found.rows
    return {
        "segment_bytes": size,
        "rows_kept": found.rows,
        "rows_written": rec.stats.rows,
        "seconds": seconds,
        "mb_per_s": size / seconds / 1e6,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--batch", type=int, default=64, help="rows per published batch (one transport read)")
    ap.add_argument("--segment-mb", type=int, default=64, help="segment size for the recovery test")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (its file system is measured)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    batches = make_batches(args.rows, args.batch)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = {
            "ingest": asyncio.run(ingest(Path(tmp) / "ingest", batches, RecorderPolicy())),
            "recovery": recovery(Path(tmp) / "recovery", args.segment_mb * 2**20),
            "batch_rows": args.batch,
        }
    if args.json:
        print(json.dumps(result))
        return 0
    i, r = result["ingest"], result["recovery"]
    print(
        f"ingest   {i['rows']:,} rows in {args.batch}-row batches: {i['rows_per_s']:,.0f} rows/s, "
        f"{i['bytes_per_s'] / 1e6:.1f} MB/s, {i['bytes_per_row']:.1f} B/row, "
        f"{i['cpu_s_per_million_rows']:.2f} CPU s per 1M rows, "
        f"{i['x_line_rate_4_links']:.1f}x the line rate of 4 links, dropped {i['dropped_rows']}"
    )
    print(
        f"recovery torn {r['segment_bytes'] / 2**20:.0f} MiB segment: {r['seconds'] * 1e3:.0f} ms "
        f"({r['mb_per_s']:.0f} MB/s scanned), kept {r['rows_kept']:,} of {r['rows_written']:,} rows"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
