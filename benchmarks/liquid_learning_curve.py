"""Readout learning curves from cached liquid features (``asicrc bench ... --cache DIR``), no simulation.

For each cache directory, the features of seed 0 are read (``features-*-seed0.npz``) and the readout
(``ridge`` or ``softmax``, as :func:`reservoir.spiking.longrun.fit_readout`) is fitted on the first K
training rows for each K, then scored on all the cached test rows. Labels come from MNIST (the first
rows of each split, as ``--n-train/--n-test`` keep them). Used for docs/spiking.md, "MNIST: where NALSM
stands".

    .venv/bin/python benchmarks/liquid_learning_curve.py --mnist DIR --sizes 250,500,1000 RUN_DIR...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist", metavar="DIR", required=True)
    ap.add_argument("--sizes", default="250,500,1000", help="training rows, comma-separated")
    ap.add_argument("--readout", choices=("ridge", "softmax"), default="ridge")
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="--cache directories")
    args = ap.parse_args()
    from reservoir.spiking.idx import load_mnist_dir
    from reservoir.spiking.longrun import fit_readout

    _, y_train, _, y_test = load_mnist_dir(args.mnist)
    sizes = [int(s) for s in args.sizes.split(",")]
    for run in args.runs:
        (path,) = sorted(Path(run).glob("features-*-seed0.npz"))
        with np.load(path) as data:
            Ftr, Fte = (np.asarray(data[k], dtype=np.float64) for k in ("train", "test"))
        row: dict[str, object] = {"run": Path(run).name, "n_test": len(Fte)}
        for k in sizes:
            if k > len(Ftr):
                continue
            pred, _ = fit_readout(args.readout, Ftr[:k], y_train[:k], Fte)
            row[str(k)] = round(float(np.mean(pred == y_test[: len(Fte)])), 4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
