"""Share-check throughput: header rebuild + double SHA-256 + difficulty, vs raw hashlib double SHA-256.

    .venv/bin/python benchmarks/bench_share.py [--nonces 200000] [--json]

Rows: the batch path ``share_difficulties`` (midstate reused per rolled version), the scalar path
``share_difficulty`` on NonceReply objects, and raw ``sha256(sha256(header).digest()).digest()`` over
prebuilt 80-byte headers (the ceiling; about 1.5 M/s on these machines). Target: >= 500,000 checks/s.
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


def best_time(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


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

    runs = [
        ("share_difficulties (batch)", args.nonces, lambda: share_difficulties(job, nonces, vbits)),
        ("share_difficulty (scalar)", len(replies), scalar),
        ("raw hashlib double SHA-256", args.nonces, raw),
    ]
    rows: list[dict[str, float | int | str]] = []
    rates: list[float] = []
    for name, count, fn in runs:
        seconds = best_time(fn, args.repeat)
        rates.append(count / seconds)
        rows.append({"path": name, "checks": count, "seconds": seconds, "checks_per_s": count / seconds})
    result = {
        "benchmark": "share check (header rebuild + double SHA-256 + difficulty)",
        "rows": rows,
        "batch_vs_raw": rates[0] / rates[2],
        "target_checks_per_s": TARGET_CHECKS_PER_S,
        "meets_target": rates[0] >= TARGET_CHECKS_PER_S,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"share checks, {args.version_bits} rolled versions, best of {args.repeat}")
    print(f"{'path':<30}{'checks':>10}{'seconds':>10}{'checks/s':>14}")
    for r in rows:
        print(f"{r['path']:<30}{r['checks']:>10,}{r['seconds']:>10.3f}{r['checks_per_s']:>14,.0f}")
    print(
        f"batch / raw double SHA-256: {rates[0] / rates[2]:.2f}; target {TARGET_CHECKS_PER_S:,}/s: "
        f"{'met' if rates[0] >= TARGET_CHECKS_PER_S else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
