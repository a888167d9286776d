"""Memory of the spiking liquids: device bytes per N and batch, and the measured peak RSS on the CPU.

Table: :func:`reservoir.spiking.memory.liquid_memory` for N = 1000 and 8000 with MNIST's 784 inputs, batches
50 and 250 (MiB). Peak RSS: one child process per kind builds the liquid and simulates one batch (default
250) of the first MNIST training images (pixels / 255) at N = 1000, one torch thread; it reports the resident
set after importing torch and loading the batch, and the peak (``VmHWM``) after ``fit_transform``
(docs/spiking.md, "Devices").

    .venv/bin/python benchmarks/liquid_memory.py --mnist DIR            # table + peak RSS of lsm and nalsm
    .venv/bin/python benchmarks/liquid_memory.py --table-only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

MIB = 2**20


def _status(key: str) -> float:
    """A /proc/self/status entry in MiB (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")


def table(sizes: tuple[int, ...], batches: tuple[int, ...]) -> None:
    """Print the device-bytes table of liquid_memory (MiB)."""
    from reservoir.spiking.liquid import build_liquid
    from reservoir.spiking.memory import features_bytes, liquid_memory

    print(
        "| N | B | fixed total | plastic total | final weights / sub-batch weights / input spikes "
        "| features 70k |"
    )
    for n in sizes:
        liq = build_liquid(n, 784, 0)
        for b in batches:
            f = liquid_memory(liq, b, plastic=False)
            p = liquid_memory(liq, b, plastic=True)
            print(
                f"| {n} | {b} | {f['total'] / MIB:.1f} | {p['total'] / MIB:.1f} | "
                f"{p['weights_out'] / MIB:.1f} / "
                f"{p['sub_batch_weights'] / MIB:.1f} / {p['input_spikes'] / MIB:.1f} | "
                f"{features_bytes(70_000, n) / MIB:.0f} |",
                flush=True,
            )


def child(kind: str, path: str, n_init: int) -> None:
    """Measure one kind in this (fresh) process."""
    X = np.load(path)
    import torch

    from reservoir.spiking.reservoir import LiquidConfig, LiquidReservoir

    torch.set_num_threads(1)
    before = _status("VmRSS")
    opts = {"n_init": n_init} if kind != "lsm" else {}
    res = LiquidReservoir(X.shape[1], LiquidConfig.from_options(kind, 1000, opts), 0)
    t0 = time.perf_counter()
    res.fit_transform(X)
    peak = _status("VmHWM")
    print(
        f"{kind}: N = 1000, batch {res.config.batch_size}, {X.shape[0]} samples: "
        f"RSS {before:.0f} MiB before, peak {peak:.0f} MiB (+{peak - before:.0f}), "
        f"{time.perf_counter() - t0:.1f} s, load1 {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist", metavar="DIR", help="MNIST IDX directory (for the peak RSS)")
    ap.add_argument("--samples", type=int, default=250, help="images simulated (default 250 = one batch)")
    ap.add_argument("--n-init", type=int, default=50, help="nalsm stage-1 samples (default 50)")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "NPY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.n_init)
        return
    table((1000, 8000), (50, 250))
    if args.table_only or not args.mnist:
        return
    from reservoir.spiking.idx import load_mnist_dir

    X = np.clip(load_mnist_dir(args.mnist)[0][: args.samples] / 255.0, 0.0, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, X)
        for kind in ("lsm", "nalsm"):
            cmd = [sys.executable, __file__, "--child", kind, path, "--n-init", str(args.n_init)]
            subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


if __name__ == "__main__":
    main()
