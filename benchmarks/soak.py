"""Soak: the whole daemon (supervisors, decoder, pipeline, recorder, HTTP) on emulated boards in firehose mode
for a fixed number of events, sampling RSS, open file descriptors and asyncio tasks; fails on growth.

By default the emulated boards run in a child process (``asicrc sim --firehose``, on ptys) so this process's
RSS is the daemon's alone; the child's RSS is sampled separately (``sim_rss``). ``--emulator inprocess``
runs them inside the daemon (``--simulate``) as before: then a leak in either shows, and a starved emulator's
backlog counts as daemon memory. Each board's chain emits ``--rate`` random nonce replies/s (a link carries
at most ~9,000 replies/s at 1 Mbaud, ~28,000 at 3.125 Mbaud, docs/protocol.md "Rates"). ``/metrics`` and
``/status`` are scraped every sample. Finished recording segments are deleted as they appear
(``--keep-recordings`` keeps them); the recorder still writes, rotates and fsyncs everything.

Warm-up is the first ``--warmup`` fraction of the events. Growth compares the median of the first three
samples after warm-up with the median of the last three; the slope of a least-squares line of RSS against
events after warm-up (bytes per 10^6 events, whole window and each half: a plateau has a second-half slope
near 0) is extrapolated to 10^8 events. Pass: RSS growth <= ``--max-growth`` (5 %), open fds and tasks not
above their post-warm-up value plus ``--slack`` (2).

Allocator probes (docs/soak.md): ``--pool system|default|jemalloc|mimalloc`` selects pyarrow's memory
pool before the daemon starts (system, the default, is what ``asicrc run`` uses); ``--trim`` calls glibc
``malloc_trim(0)`` before every RSS sample (memory freed but kept by malloc is returned, so what is left is
live); glibc arenas: run with ``MALLOC_ARENA_MAX=2`` in the environment.

Run: ``.venv/bin/python benchmarks/soak.py --quick`` (10^7 events, about 2 min) or
``.venv/bin/python benchmarks/soak.py`` (10^8 events: ~18 min at ~95,000 events/s: 4 boards of 25,000
replies/s at 3.125 Mbaud; the emulator only starts its firehose once bring-up has sent a job).
Add ``--json`` for a machine-readable summary. Exit status 0 = pass, 1 = growth over the limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
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
from daemon.memory import TRIM_INTERVAL_S, malloc_trim

ROOT = Path(__file__).resolve().parents[1]
#: Events for the full run (RELIABILITY.md: >= 10^8) and for --quick.
FULL_EVENTS = 100_000_000
QUICK_EVENTS = 10_000_000
#: Event count the slope is extrapolated to (RELIABILITY.md: ">= 10^8 events").
EXTRAPOLATE_EVENTS = 100_000_000
#: Sampling period (s) and the pass limits (RELIABILITY.md: "no growth beyond a few percent after warm-up").
SAMPLE_S = 2.0
MAX_RSS_GROWTH = 0.05
SLACK = 2
#: Wait (s) for the emulator child to exit after SIGTERM before it is killed.
CHILD_STOP_S = 10.0

CONFIG: dict[str, Any] = {
    "timing": {"status_interval_s": 30.0, "telemetry_interval_s": 1.0, "silence_timeout_s": 60.0},
    "recorder": {"flush_interval_s": 1.0, "fsync_interval_s": 10.0, "segment_bytes": 8 * 1024 * 1024},
    "plans": [{"name": "soak", "kind": "hold", "hold_ticket_diff": 1.0}],
}


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process, KiB (/proc/<pid>/status VmRSS; 0 when gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _scrape(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as r:
        return len(r.read())


def select_pool(name: str) -> str:
    """Make ``name`` (default/system/jemalloc/mimalloc) pyarrow's default pool; returns the backend in use."""
    if name != "default":
        pool = {
            "system": pa.system_memory_pool,
            "jemalloc": pa.jemalloc_memory_pool,
            "mimalloc": pa.mimalloc_memory_pool,
        }[name]()
        pa.set_memory_pool(pool)
    return str(pa.default_memory_pool().backend_name)


def fit(samples: list[dict[str, float]], key: str = "rss_kib") -> dict[str, float]:
    """Least-squares slope of ``key`` (KiB) vs events, bytes per 10^6 events: whole window and each half."""

    def slope(rows: list[dict[str, float]]) -> float:
        if len(rows) < 2:
            return float("nan")
        xs = [r["events"] for r in rows]
        ys = [r[key] * 1024 for r in rows]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx == 0:
            return float("nan")
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx * 1e6

    h = len(samples) // 2
    return {"all": slope(samples), "first_half": slope(samples[:h]), "second_half": slope(samples[h:])}


def start_sim_child(boards: int, rate: float, seed: int) -> tuple[subprocess.Popen[str], list[Any]]:
    """``asicrc sim`` in a child serving ``boards`` firehose boards; returns it and the board paths."""
    cmd = [sys.executable, "-m", "daemon", "sim", "--boards", str(boards), "--firehose", str(rate)]
    cmd += ["--firehose-after-job", "--seed", str(seed)]  # bring-up gets the link to itself
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        info = json.loads(proc.stdout.readline())  # "" (a child that died) is a ValueError
    except ValueError:
        proc.terminate()
        proc.wait(10)
        raise RuntimeError("asicrc sim did not print its board paths") from None
    return proc, list(info["boards"])


def stop_child(proc: subprocess.Popen[str], timeout_s: float = CHILD_STOP_S) -> int:
    """SIGTERM the emulator child and wait; SIGKILL it if it has not exited after ``timeout_s``."""
    proc.terminate()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        print(f"soak: emulator child {proc.pid} ignored SIGTERM for {timeout_s} s; killed", file=sys.stderr)
        proc.kill()
        return proc.wait()


async def soak(
    events: int,
    boards: int,
    rate: float,
    warmup: float,
    keep: bool,
    state: Path,
    trace: bool = False,
    emulator: str = "child",
    trim: bool = False,
    baud: int = 1_000_000,
    samples_path: Path | None = None,
) -> dict[str, Any]:
    raw = dict(CONFIG)
    child: subprocess.Popen[str] | None = None
    if emulator == "child":
        child, paths = await asyncio.to_thread(start_sim_child, boards, rate, 1)
        raw["boards"] = [
            {
                "name": p["name"],
                "kind": "gamma",
                "data_port": p["data"],
                "control_port": p["control"],
                "baud": baud,
            }
            for p in paths
        ]
    cfg = parse_config(raw)
    d = Daemon(cfg, state_dir=state, http=("127.0.0.1", 0), simulate=0 if child else boards)
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
            if trim:
                malloc_trim()
            s = {
                "t_s": time.monotonic() - t0,
                "events": float(n),
                "rss_kib": float(rss_kib()),
                "sim_rss_kib": float(rss_kib(child.pid)) if child else 0.0,
                "fds": float(open_fds()),
                "tasks": float(len(asyncio.all_tasks())),
                "arrow_kib": pa.total_allocated_bytes() / 1024,
                "py_blocks": float(sys.getallocatedblocks()),
                "load1": os.getloadavg()[0],
            }
            samples.append(s)
            if samples_path is not None:
                with samples_path.open("a") as f:
                    if len(samples) == 1:
                        f.write(",".join(s) + "\n")
                    f.write(",".join(f"{v:.10g}" for v in s.values()) + "\n")
            print(
                f"{s['t_s']:8.1f} s {n:>12,d} events  rss {s['rss_kib'] / 1024:7.1f} MiB"
                f"  sim {s['sim_rss_kib'] / 1024:6.1f} MiB  fds {s['fds']:.0f}  tasks {s['tasks']:.0f}"
                f"  arrow {s['arrow_kib'] / 1024:.1f} MiB  py blocks {s['py_blocks']:.0f}"
                f"  load {s['load1']:.1f}",
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
        try:
            code = await run
        finally:  # the emulator child goes in every case, even when the daemon failed
            if child is not None:
                await asyncio.to_thread(stop_child, child)
    elapsed = time.monotonic() - t0
    after = [s for s in samples if s["events"] >= warmup * events]
    if len(after) < 6:
        after = samples[len(samples) // 3 :]
    # The daemon trims the heap every TRIM_INTERVAL_S, so RSS is a sawtooth of that period: compare windows
    # of two periods (a few samples on short runs), not single samples that may sit on a peak or a trough.
    window = max(3, min(len(after) // 3, round(2 * TRIM_INTERVAL_S / SAMPLE_S)))
    first, last = after[:window], after[-window:]

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    def spread(rows: list[dict[str, float]], key: str) -> float:
        return max(r[key] for r in rows) - min(r[key] for r in rows)

    rss_growth = med(last, "rss_kib") / med(first, "rss_kib") - 1.0
    slopes = fit(after)
    rec = d.state.recorder
    total = int(samples[-1]["events"]) if samples else 0
    projected = med(last, "rss_kib") * 1024 + slopes["all"] * max(0, EXTRAPOLATE_EVENTS - total) / 1e6
    result: dict[str, Any] = {
        "events": total,
        "seconds": round(elapsed, 1),
        "events_per_s": round(total / elapsed),
        "boards": boards,
        "rate_per_board": rate,
        "baud": baud,
        "emulator": emulator,
        "arrow_pool": pa.default_memory_pool().backend_name,
        "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX", ""),
        "malloc_trim": trim,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "load1_mean": round(statistics.fmean(s["load1"] for s in samples), 2),
        "samples": len(samples),
        "samples_after_warmup": len(after),
        "growth_window_samples": window,
        "rss_mib_first": round(med(first, "rss_kib") / 1024, 1),
        "rss_mib_last": round(med(last, "rss_kib") / 1024, 1),
        "rss_growth": round(rss_growth, 4),
        "rss_sawtooth_mib_last": round(spread(last, "rss_kib") / 1024, 1),
        "rss_slope_bytes_per_mevent": round(slopes["all"]),
        "rss_slope_first_half": round(slopes["first_half"]),
        "rss_slope_second_half": round(slopes["second_half"]),
        "rss_mib_at_1e8_events": round(projected / 2**20, 1),
        "sim_rss_mib_first": round(med(first, "sim_rss_kib") / 1024, 1),
        "sim_rss_mib_last": round(med(last, "sim_rss_kib") / 1024, 1),
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
    ap.add_argument("--boards", type=int, default=4)
    ap.add_argument("--rate", type=float, default=25_000.0, help="firehose replies/s per board")
    ap.add_argument(
        "--baud", type=int, default=3_125_000, help="chain baud (3,125,000 carries ~28,000 replies/s/board)"
    )
    ap.add_argument("--warmup", type=float, default=0.2, help="fraction of the events counted as warm-up")
    ap.add_argument("--max-growth", type=float, default=MAX_RSS_GROWTH)
    ap.add_argument("--slack", type=int, default=SLACK)
    ap.add_argument("--keep-recordings", action="store_true")
    ap.add_argument("--state-dir", type=Path, default=None, help="default: a temporary directory")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--samples", type=Path, default=None, help="append every sample to this CSV file")
    ap.add_argument("--tracemalloc", action="store_true", help="report the source lines whose memory grew")
    ap.add_argument("--emulator", choices=("child", "inprocess"), default="child", help="where boards run")
    ap.add_argument(
        "--pool",
        choices=("default", "system", "jemalloc", "mimalloc"),
        default="system",
        help="pyarrow memory pool (system = what asicrc run uses; default = pyarrow's own choice)",
    )
    ap.add_argument("--trim", action="store_true", help="glibc malloc_trim(0) before every RSS sample")
    a = ap.parse_args(argv)
    events = QUICK_EVENTS if a.quick else a.events
    with tempfile.TemporaryDirectory(prefix="asicrc-soak-") as tmp:
        state = a.state_dir or Path(tmp)
        if a.tracemalloc:
            tracemalloc.start(1)
        select_pool(a.pool)
        r = asyncio.run(
            soak(
                events,
                a.boards,
                a.rate,
                a.warmup,
                a.keep_recordings,
                state,
                a.tracemalloc,
                emulator=a.emulator,
                trim=a.trim,
                baud=a.baud,
                samples_path=a.samples,
            )
        )
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
