"""Host timestamp accuracy against the emulator's ground truth, on the ideal and the FTDI link models.

For each link model, two receivers stamp the same kind of nonce stream from an emulator process on a real pty:

* ``bare_reader``: a blocking ``select``/``os.read`` process (no asyncio, no daemon), 9-byte replies at the
  reset baud (115,200): the floor the OS alone sets;
* ``daemon``: the daemon's driver path (``SerialTransport`` -> ``BoardSupervisor`` -> ``ReadDecoder`` ->
  event pipeline) after a full chain bring-up at 3.125 Mbaud, 11-byte replies.

Each received reply is matched one to one to the emulator's ground truth (the k-th received nonce must be the
k-th nonce sent). Errors, each as median / p90 / p99 (us), for the raw read stamp ``t_host_ns`` and the
serialization-corrected ``t_ns``:

* host side: stamp minus the host time the emulator's ``os.write`` of the reply's last byte returned (what the
  receiver is responsible for; target median < 200 us on the ideal link for the daemon);
* end to end: stamp minus the modelled time the reply's last byte left the wire (adds the emulator's own
  scheduling lateness and, on FTDI, the latency timer);
* emulator lateness: actual write minus modelled delivery.

Run: ``.venv/bin/python benchmarks/bench_timestamps.py [--rate 2000] [--seconds 3] [--json]``.
Figures are noisy on a shared machine; rerun when it is quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import TARGET_MEDIAN_US, _ingest, _reference

LINKS = ("ideal", "ftdi")
#: The bare reader runs at the reset baud (115,200): 9-byte replies take 0.78 ms each, so keep its rate
#: well under line rate (1,280/s) to measure stamping, not a saturated wire.
BARE_MAX_RATE = 500.0


async def run(rate: float, seconds: float, links: tuple[str, ...] = LINKS) -> list[dict[str, Any]]:
    """One row per (link, receiver): the :func:`bench_ingest.ts_errors` dictionary plus ``link``/``path``."""
    rows = []
    for link in links:
        rows.append(await _reference(min(rate, BARE_MAX_RATE), seconds, link))
        d = await _ingest(1, rate, seconds, link, True)
        rows.append(
            {k: v for k, v in d.items() if k.startswith(("t_", "lateness", "ts_"))}
            | {
                "path": "daemon",
                "link": link,
                "samples": d["samples"],
                "lost": d["lost"],
                "rate": rate,
            }
        )
        rows[-2]["rate"] = min(rate, BARE_MAX_RATE)
    return rows


def _fmt(p: dict[str, float]) -> str:
    return f"{p['median_us']:9.1f} {p['p90_us']:9.1f} {p['p99_us']:9.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a fixed-width text table (us)."""
    head = f"{'link':6} {'receiver':12} {'stamp':10} {'vs':9} {'median':>9} {'p90':>9} {'p99':>9}  (us)"
    out = [head, "-" * len(head)]
    for r in rows:
        for ref in ("write", "wire_end"):
            for col in ("t_ns", "t_host_ns"):
                out.append(f"{r['link']:6} {r['path']:12} {col:10} {ref:9} {_fmt(r[f'{col}-{ref}'])}")
        out.append(f"{r['link']:6} {r['path']:12} {'lateness':10} {'deliver':9} {_fmt(r['lateness'])}")
        out.append(f"{'':6} {'':12} samples {r['samples']}, not received {r['lost']}, rate {r['rate']:.0f}/s")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=2_000.0, help="nonce replies/s (bare reader: <= 500)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--link", choices=LINKS, action="append", help="link model(s) to run (default: both)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    rows = asyncio.run(run(args.rate, args.seconds, tuple(args.link or LINKS)))
    ideal = [r for r in rows if r["link"] == "ideal" and r["path"] == "daemon"]
    verdict = {
        "target_median_us": TARGET_MEDIAN_US,
        "daemon_ideal_host_median_us": ideal[0]["t_ns-write"]["median_us"] if ideal else None,
    }
    if args.json:
        print(json.dumps({"rows": rows} | verdict))
        return 0
    print(table(rows))
    if ideal:
        m = verdict["daemon_ideal_host_median_us"]
        ok = "meets" if m is not None and m < TARGET_MEDIAN_US else "MISSES"
        print(
            f"daemon, ideal link, host-side t_ns median {m:.1f} us: {ok} the < {TARGET_MEDIAN_US:.0f} us goal"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
