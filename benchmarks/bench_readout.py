"""RidgeReadout against scikit-learn's Ridge, and a streaming fit's peak memory.

    .venv/bin/python benchmarks/bench_readout.py [--rows 200000] [--cols 500] [--stream-rows 10000000]
                                                 [--chunk 10000] [--repeat 3]

1. Batch: fit time of RidgeReadout(alpha=1) vs Ridge(alpha=1) (auto solver = cholesky) on rows x cols,
   best of --repeat; max |prediction difference| on 10,000 fresh rows.
2. Streaming: a child process draws --stream-rows x cols in chunks of --chunk rows (never holding more than
   one chunk), feeds partial_fit, and reports its peak RSS (/proc VmHWM; ru_maxrss survives exec) and the
   error of the fitted weights against the generating ones. Target: <= 300 MB.
BLAS threads are pinned to BENCH_THREADS (default 1) so the ratio is not a thread-scheduling artefact.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("BENCH_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("BENCH_THREADS", "1"))

import numpy as np
from sklearn.linear_model import Ridge

from reservoir.readout import RidgeReadout


def batch(rows: int, cols: int, repeat: int) -> dict[str, float]:
    """Fit-time ratio (ours / sklearn) and max prediction difference."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, cols))
    X += rng.uniform(-2, 2, cols)
    w = rng.standard_normal(cols)
    y = X @ w + rng.standard_normal(rows)
    t_ours, t_sk = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ours = RidgeReadout(alpha=1.0).fit(X, y)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sk = Ridge(alpha=1.0).fit(X, y)
        t_sk.append(time.perf_counter() - t0)
    Xt = rng.standard_normal((10_000, cols))
    diff = float(np.max(np.abs(ours.predict(Xt) - sk.predict(Xt))))
    return {
        "ours_s": min(t_ours),
        "sklearn_s": min(t_sk),
        "ratio": min(t_ours) / min(t_sk),
        "max_abs_diff": diff,
    }


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (per address space, so not inherited across exec like ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            status = f.read()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stream_child(rows: int, cols: int, chunk: int) -> None:
    """Run in the child: stream rows through partial_fit, print JSON with peak RSS."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal(cols)
    ro = RidgeReadout(alpha=1.0)
    X = np.empty((chunk, cols))
    t0 = time.perf_counter()
    done = 0
    while done < rows:
        n = min(chunk, rows - done)
        rng.standard_normal(out=X[:n])
        y = X[:n] @ w + 3.0 + rng.standard_normal(n)
        ro.partial_fit(X[:n], y)
        done += n
    elapsed = time.perf_counter() - t0
    peak_mb = peak_rss_mb()
    err = float(np.max(np.abs(ro.coef_ - w)))
    print(json.dumps({"rows": done, "peak_rss_mb": peak_mb, "seconds": elapsed, "max_coef_err": err}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--cols", type=int, default=500)
    ap.add_argument("--stream-rows", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        stream_child(args.stream_rows, args.cols, args.chunk)
        return 0
    b = batch(args.rows, args.cols, args.repeat)
    print(
        f"batch {args.rows} x {args.cols}: ours {b['ours_s']:.3f} s, sklearn Ridge {b['sklearn_s']:.3f} s, "
        f"ratio {b['ratio']:.3f}; max |prediction diff| {b['max_abs_diff']:.2e}"
    )
    cmd = [sys.executable, __file__, "--child", "--stream-rows", str(args.stream_rows)]
    cmd += ["--cols", str(args.cols), "--chunk", str(args.chunk)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    s = json.loads(out.strip().splitlines()[-1])
    verdict = "OK" if s["peak_rss_mb"] <= 300 else "OVER"
    print(
        f"stream {s['rows']} x {args.cols} in chunks of {args.chunk}: peak RSS {s['peak_rss_mb']:.0f} MB "
        f"(target <= 300: {verdict}), {s['seconds']:.1f} s, max |coef - true| {s['max_coef_err']:.1e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
