"""Reply decoding throughput: vectorised ReplyBatchDecoder vs the scalar FrameDecoder, CRC checked.

    .venv/bin/python benchmarks/bench_decoder.py [--frames 1000000] [--scalar-frames 20000] [--json]

Builds a buffer of nonce replies (11 bytes, version rolling on) with garbage sprinkled in (1-8 bytes after
about every 50th reply, preamble bytes included), then decodes it: in one feed, in 4 KiB reads (what a
serial transport hands over), through the whole hot path (`drivers.read_decoder.ReadDecoder`: columns,
timestamps, bit fields) in 4 KiB reads, and with the scalar decoder on a slice. Prints frames/s and the
ratio to the line rate of one 3.125 Mbaud link (28,400 replies/s, docs/protocol.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.decoder import FrameDecoder
from drivers.read_decoder import ReadDecoder
from drivers.reply_batch import ReplyBatchDecoder, encode_replies
from drivers.transport import ReadBatch

#: One 3.125 Mbaud link: 110 bits per 11-byte reply (docs/protocol.md "Rates").
LINE_RATE_REPLIES_PER_S = 28_400
TARGET_FRAMES_PER_S = 1_000_000


def build_stream(frames: int, seed: int = 1) -> tuple[bytes, int]:
    """Nonce replies with garbage sprinkled in; returns (bytes, number of replies)."""
    rng = np.random.default_rng(seed)
    w = encode_replies(
        rng.integers(0, 2**32, frames, dtype=np.uint64).astype(np.uint32),
        rng.integers(0, 5, frames),
        rng.integers(0, 256, frames),
        rng.integers(0, 2**16, frames),
    )
    raw = w.tobytes()
    cuts = np.sort(rng.choice(frames, size=frames // 50, replace=False)) * 11
    parts: list[bytes] = []
    prev = 0
    pool = np.array([0x55, 0xAA, 0x00, 0xFF, 0x13, 0x66], dtype=np.uint8)
    for cut in cuts.tolist():
        parts.append(raw[prev:cut])
        parts.append(rng.choice(pool, size=int(rng.integers(1, 9))).tobytes())
        prev = cut
    parts.append(raw[prev:])
    return b"".join(parts), frames


def best_time(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Best wall time of ``repeat`` runs of ``fn`` (which returns the frame count), s."""
    best, count = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - t0)
    return best, count


def batch_one_feed(data: bytes) -> int:
    return len(ReplyBatchDecoder().feed(data))


def batch_chunked(data: bytes, chunk: int = 4096) -> int:
    dec = ReplyBatchDecoder()
    return sum(len(dec.feed(data[i : i + chunk])) for i in range(0, len(data), chunk))


def hot_path_chunked(data: bytes, chunk: int = 4096) -> int:
    """The daemon's whole hot path (columns, timestamps, bit fields; no share check) on 4 KiB reads."""
    dec = ReadDecoder()
    reads = [ReadBatch(data[i : i + chunk], i, i) for i in range(0, len(data), chunk)]
    return len(dec.decode(reads, 3_125_000).nonces)


def scalar(data: bytes) -> int:
    return len(FrameDecoder().feed(data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="nonce replies in the buffer")
    ap.add_argument("--scalar-frames", type=int, default=20_000, help="replies decoded by the scalar decoder")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    data, frames = build_stream(args.frames)
    small = data[: args.scalar_frames * 11]
    rows: list[dict[str, float | int | str]] = []
    rates: list[float] = []
    for name, fn, buf in (
        ("ReplyBatchDecoder, one feed", batch_one_feed, data),
        ("ReplyBatchDecoder, 4 KiB reads", batch_chunked, data),
        ("ReadDecoder (hot path), 4 KiB reads", hot_path_chunked, data),
        ("FrameDecoder (scalar)", scalar, small),
    ):
        seconds, count = best_time(lambda fn=fn, buf=buf: fn(buf), args.repeat)  # type: ignore[misc]
        rate = count / seconds
        rates.append(rate)
        rows.append(
            {
                "decoder": name,
                "frames": count,
                "bytes": len(buf),
                "seconds": seconds,
                "frames_per_s": rate,
                "x_line_rate": rate / LINE_RATE_REPLIES_PER_S,
            }
        )
    speedup = rates[0] / rates[3]
    meets = rates[0] >= TARGET_FRAMES_PER_S
    result = {
        "benchmark": "reply decoding, CRC checked, garbage sprinkled",
        "replies_in_buffer": frames,
        "line_rate_replies_per_s": LINE_RATE_REPLIES_PER_S,
        "target_frames_per_s": TARGET_FRAMES_PER_S,
        "rows": rows,
        "batch_vs_scalar": speedup,
        "meets_target": meets,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{frames:,} nonce replies, {len(data):,} bytes with garbage; CRC checked; best of {args.repeat}")
    print(f"{'decoder':<32}{'frames':>10}{'seconds':>10}{'frames/s':>14}{'x 3.125M link':>15}")
    for r in rows:
        print(
            f"{r['decoder']:<32}{r['frames']:>10,}{r['seconds']:>10.3f}"
            f"{r['frames_per_s']:>14,.0f}{r['x_line_rate']:>15.1f}"
        )
    print(
        f"batch / scalar: {speedup:.1f}x; target {TARGET_FRAMES_PER_S:,} frames/s: "
        f"{'met' if meets else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
