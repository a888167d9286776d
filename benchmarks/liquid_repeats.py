"""Readout trained on repeated presentations: does NALSM's training protocol explain the gap to the paper?

NALSM's own run files (``NALSM_RUN_MAIN_SIM_MNIST.py``, ``LSM_RUN_MAIN_SIM_MNIST.py``) train the softmax
readout online over many passes of the training set (``NUM_OF_TRAIN_CYLES_ON_DATASET_IN``), and every pass
*re-simulates* the liquid, so each image is seen with fresh Poisson input spikes every epoch; the epoch is
chosen on a validation split. ``asicrc bench`` presents each training image once. This script measures what
the repetition is worth: one liquid per kind (stage 1 as the bench runs it), the training images presented
K times (each pass a fresh input-spike draw, :meth:`LiquidReservoir.transform` call by call), the test
images once; the readout (``ridge`` and ``softmax``, as :func:`reservoir.spiking.longrun.fit_readout`)
fitted on the first k passes stacked, k = 1..K, and scored on the test images. Labels and pixels / 255 as
the bench's MNIST protocol; the first ``--n-train`` / ``--n-test`` images of each split.

    .venv/bin/python benchmarks/liquid_repeats.py --mnist DIR --kinds lsm,nalsm --n-train 2000 \
        --n-test 1000 --passes 1,2,4,8 --set n_init=5000

One JSON line per (kind, k) on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


def presentations(res: Any, Xtr: F64, Xte: F64, k_max: int, kind: str = "") -> tuple[list[F64], F64]:
    """(features of ``k_max`` passes over ``Xtr``, features of ``Xte`` once) from a LiquidReservoir ``res``:
    stage 1 and the first pass by ``fit_transform``, each later pass a fresh input-spike draw."""
    first = res.fit_transform(Xtr)
    Fte = res.transform(Xte)
    runs = [first]
    for k in range(2, k_max + 1):
        print(f"{kind}: training pass {k}/{k_max}", file=sys.stderr, flush=True)
        runs.append(res.transform(Xtr))
    return runs, Fte


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist", metavar="DIR", required=True)
    ap.add_argument("--kinds", default="lsm,nalsm", help="liquids, comma-separated (lsm, lsm-stdp, nalsm)")
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--passes", default="1,2,4,8", help="training passes k to score, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="liquid option")
    args = ap.parse_args()
    passes = sorted({int(k) for k in args.passes.split(",")})
    if not passes or passes[0] < 1:
        ap.error("--passes: positive integers")
    options: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set {item!r}: expected KEY=VALUE")
        options[key] = value

    from reservoir.spiking.idx import load_mnist_dir
    from reservoir.spiking.longrun import fit_readout
    from reservoir.spiking.reservoir import LiquidConfig, LiquidReservoir

    X_train, y_train, X_test, y_test = load_mnist_dir(args.mnist)
    Xtr, ytr = X_train[: args.n_train] / 255.0, y_train[: args.n_train]
    Xte, yte = X_test[: args.n_test] / 255.0, y_test[: args.n_test]
    for kind in args.kinds.split(","):
        config = LiquidConfig.from_options(kind, args.size, options)
        res = LiquidReservoir(Xtr.shape[1], config, args.seed)
        t0 = time.perf_counter()
        runs, Fte = presentations(res, Xtr, Xte, passes[-1], kind)
        sim_s = time.perf_counter() - t0
        for k in passes:
            Ftr = np.vstack(runs[:k])
            row: dict[str, object] = {"kind": kind, "passes": k, "n_train": len(Xtr), "n_test": len(Xte)}
            for readout in ("ridge", "softmax"):
                pred, _ = fit_readout(readout, Ftr, np.tile(ytr, k), Fte)
                row[readout] = round(float(np.mean(pred == yte)), 4)
            row["simulate_s"] = round(sim_s, 1)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
