"""Share-check throughput: header rebuild + double SHA-256 + difficulty, vs raw hashlib double SHA-256.

    .venv/bin/python benchmarks/bench_share.py [--nonces 200000] [--json]

Rows: the batch path ``share_difficulties`` (midstate reused per rolled version, CPython's built-in SHA-256),
the same batch path with OpenSSL's ``hashlib.sha256`` objects instead (what it used before), the scalar path
``share_difficulty`` on NonceReply objects, and raw hashlib ``sha256(sha256(header).digest()).digest()`` over
prebuilt 80-byte headers (no header rebuild, no difficulty). Target: >= 500,000 checks/s on one core.

Each figure is the best of ``--repeat`` rounds, the paths interleaved round by round so that a shared,
loaded machine slows them alike. Rates are given both per wall-clock second and per process-CPU second
(``time.process_time``): on a busy machine the CPU-time rate is what one idle core would do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import drivers.share as share_mod
from drivers.frames import JobFrame, NonceReply
from drivers.share import share_difficulties, share_difficulty

TARGET_CHECKS_PER_S = 500_000


def make_job(seed: int) -> JobFrame:
    rng = np.random.default_rng(seed)
    return JobFrame(
        job_id=0x18,
        prev_block_hash=rng.bytes(32),
        merkle_root=rng.bytes(32),
        version=0x20000000,
        nbits=0x1703A30C,
        ntime=1_700_000_000,
    )


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process-CPU seconds) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def with_openssl_midstate(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run with the batch path's SHA-256 constructor swapped for hashlib's (OpenSSL) one."""

    def run() -> object:
        saved = share_mod._BATCH_SHA256
        share_mod._BATCH_SHA256 = hashlib.sha256
        try:
            return fn()
        finally:
            share_mod._BATCH_SHA256 = saved

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nonces", type=int, default=200_000, help="nonces per run (batch and raw)")
    ap.add_argument("--scalar-nonces", type=int, default=50_000, help="nonces for the scalar path")
    ap.add_argument("--version-bits", type=int, default=16, help="distinct rolled versions among the nonces")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(2)
    job = make_job(1)
    nonces = rng.integers(0, 2**32, args.nonces, dtype=np.uint64).astype(np.uint32)
    vbits = rng.integers(0, args.version_bits, args.nonces).astype(np.uint16)
    replies = [NonceReply(int(n), 0, 0x18, int(v)) for n, v in zip(nonces[: args.scalar_nonces], vbits)]
    headers = [
        job.header_prefix(job.version | (int(v) << 13)) + int(n).to_bytes(4, "big")
        for n, v in zip(nonces.tolist(), vbits.tolist())
    ]

    def raw() -> None:
        sha = hashlib.sha256
        for h in headers:
            sha(sha(h).digest()).digest()

    def scalar() -> None:
        for r in replies:
            share_difficulty(job, r)

    def batch() -> object:
        return share_difficulties(job, nonces, vbits)

    runs = [
        ("share_difficulties (batch)", args.nonces, batch),
        ("batch, OpenSSL midstate", args.nonces, with_openssl_midstate(batch)),
        ("share_difficulty (scalar)", len(replies), scalar),
        ("raw hashlib double SHA-256", args.nonces, raw),
    ]
    best = [[float("inf"), float("inf")] for _ in runs]
    for _ in range(args.repeat):
        for i, (_, _, fn) in enumerate(runs):
            wall, cpu = timed(fn)
            best[i] = [min(best[i][0], wall), min(best[i][1], cpu)]
    rows: list[dict[str, float | int | str]] = []
    rates: list[float] = []
    cpu_rates: list[float] = []
    for (name, count, _), (wall, cpu) in zip(runs, best):
        rates.append(count / wall)
        cpu_rates.append(count / max(cpu, 1e-9))
        rows.append(
            {
                "path": name,
                "checks": count,
                "seconds": wall,
                "checks_per_s": rates[-1],
                "cpu_seconds": cpu,
                "checks_per_cpu_s": cpu_rates[-1],
            }
        )
    result = {
        "benchmark": "share check (header rebuild + double SHA-256 + difficulty)",
        "rows": rows,
        "batch_vs_raw": rates[0] / rates[3],
        "batch_vs_raw_cpu": cpu_rates[0] / cpu_rates[3],
        "target_checks_per_s": TARGET_CHECKS_PER_S,
        "meets_target": rates[0] >= TARGET_CHECKS_PER_S,
        "meets_target_cpu": cpu_rates[0] >= TARGET_CHECKS_PER_S,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"share checks, {args.version_bits} rolled versions, best of {args.repeat} interleaved rounds")
    print(f"{'path':<30}{'checks':>10}{'wall s':>9}{'checks/s':>12}{'cpu s':>9}{'checks/cpu-s':>14}")
    for r in rows:
        print(
            f"{r['path']:<30}{r['checks']:>10,}{r['seconds']:>9.3f}{r['checks_per_s']:>12,.0f}"
            f"{r['cpu_seconds']:>9.3f}{r['checks_per_cpu_s']:>14,.0f}"
        )
    verdict = {True: "met", False: "NOT met"}
    print(
        f"batch / raw double SHA-256: {rates[0] / rates[3]:.2f} wall, {cpu_rates[0] / cpu_rates[3]:.2f} cpu; "
        f"target {TARGET_CHECKS_PER_S:,}/s: {verdict[rates[0] >= TARGET_CHECKS_PER_S]} (wall), "
        f"{verdict[cpu_rates[0] >= TARGET_CHECKS_PER_S]} (cpu)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
