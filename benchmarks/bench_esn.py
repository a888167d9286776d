"""Our ESN against reservoirpy's on NARMA10, same data and splits (200 washout, 4000 train, 1000 test).

    .venv/bin/python benchmarks/bench_esn.py [--sizes 100 200 400] [--seeds 3]

reservoirpy is not a project dependency: it is installed into ``.venv-bench`` (a venv made with
--system-site-packages; created on first use) and run in a subprocess on the very same scaled input.
Both sides get the same hyper-parameters (sr 0.9, leak 1, input scaling 0.02, uniform bias +-0.5, 10 %
recurrent density, dense input). Our readout picks alpha by 5-fold CV on the training rows; reservoirpy's
Ridge uses ridge=1e-6 (its "oracle" row shows its best test NMSE over a ridge grid, an upper bound).
Timing = build + run over all 5200 steps + readout fit + test prediction, per seed, median over seeds, both
wall-clock ("time ratio") and process CPU time ("cpu ratio", steadier on a loaded machine).
BLAS threads are pinned to BENCH_THREADS (default 1) for both sides; ``BENCH_THREADS=`` (empty) or
``OPENBLAS_NUM_THREADS=2`` set in the environment beforehand gives the default/threaded figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("BENCH_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("BENCH_THREADS", "1"))

import numpy as np

from reservoir.esn import ESN, ESNParams
from reservoir.readout import RidgeReadout
from reservoir.tasks import MinMaxScaler, narma10_task, nmse

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".venv-bench"
RPY_VERSION = "reservoirpy==0.4.2"
ANCHORS = {50: 0.143, 100: 0.103, 200: 0.050, 400: 0.030}

RPY_SCRIPT = r"""
import json, sys, time
import numpy as np
from reservoirpy.nodes import Reservoir, Ridge
d = np.load(sys.argv[1])
u, y = d["u"], d["y"]
w, ntr, nte = int(d["washout"]), int(d["n_train"]), int(d["n_test"])
out = []
for N in json.loads(sys.argv[2]):
    for seed in json.loads(sys.argv[3]):
        res_ = {}
        for ridge in [1e-6, 1e-8, 1e-7, 1e-5, 1e-4]:
            t0, c0 = time.perf_counter(), time.process_time()
            rng = np.random.default_rng(seed)
            r = Reservoir(units=N, lr=1.0, sr=0.9, input_scaling=0.02, input_connectivity=1.0,
                          rc_connectivity=0.1, bias=rng.uniform(-0.5, 0.5, N), seed=seed)
            esn = r >> Ridge(ridge=ridge)
            esn.fit(u[: w + ntr], y[: w + ntr], warmup=w)
            p = esn.run(u[w + ntr : w + ntr + nte])
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            yt = y[w + ntr : w + ntr + nte]
            res_[ridge] = (float(np.mean((p - yt) ** 2) / np.var(yt)), dt, dc)
        out.append({"N": N, "seed": seed, "nmse": res_[1e-6][0], "time_s": res_[1e-6][1],
                    "cpu_s": res_[1e-6][2], "oracle_nmse": min(v[0] for v in res_.values())})
print(json.dumps(out))
"""


def ensure_bench_venv() -> Path:
    """Python of .venv-bench with reservoirpy installed (creates it on first use)."""
    py = BENCH_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(BENCH_VENV)], check=True)
    check = subprocess.run([str(py), "-c", "import reservoirpy"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", RPY_VERSION], check=True)
    return py


def ours(
    u: np.ndarray, y: np.ndarray, w: int, ntr: int, nte: int, N: int, seed: int, alpha: float | str = "cv"
) -> tuple[float, float, float]:
    """(test NMSE, wall s, CPU s) for our ESN + ridge readout (alpha by CV, or fixed like reservoirpy's)."""
    t0, c0 = time.perf_counter(), time.process_time()
    esn = ESN(1, ESNParams(size=N), seed)
    S = esn.run(u[: w + ntr + nte])
    ro = RidgeReadout(alpha=alpha).fit(S[w : w + ntr], y[w : w + ntr, 0])
    p = ro.predict(S[w + ntr :])
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return nmse(p, y[w + ntr :, 0]), dt, dc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    task = narma10_task()
    sc = MinMaxScaler.fit(task.u[task.train])
    u, y = sc.transform(task.u), task.y
    w, ntr, nte = task.washout, task.n_train, task.n_test
    seeds = list(range(args.seeds))
    rows_ours = {N: [ours(u, y, w, ntr, nte, N, s) for s in seeds] for N in args.sizes}
    rows_fixed = {N: [ours(u, y, w, ntr, nte, N, s, alpha=1e-6) for s in seeds] for N in args.sizes}
    py = ensure_bench_venv()
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "narma.npz"
        np.savez(f, u=u, y=y, washout=w, n_train=ntr, n_test=nte)
        proc = subprocess.run(
            [str(py), "-c", RPY_SCRIPT, str(f), json.dumps(args.sizes), json.dumps(seeds)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
    rpy = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"NARMA10, {ntr} train / {nte} test, washout {w}, seeds {seeds}; NMSE mean over seeds")
    hdr = (
        "N     ours NMSE  rpy NMSE  rpy oracle  anchor  NMSE ratio  ours s  rpy s  time ratio"
        "  cpu s (ours/rpy)  ratio"
        "  | ours alpha=1e-6: NMSE  s  time ratio"
    )
    print(hdr)
    for N in args.sizes:
        o, fx = np.array(rows_ours[N]), np.array(rows_fixed[N])
        r = [x for x in rpy if x["N"] == N]
        r_nmse = np.mean([x["nmse"] for x in r])
        r_or = np.mean([x["oracle_nmse"] for x in r])
        r_t = np.median([x["time_s"] for x in r])
        r_c = np.median([x["cpu_s"] for x in r])
        o_nmse, o_t, o_c = float(o[:, 0].mean()), float(np.median(o[:, 1])), float(np.median(o[:, 2]))
        print(
            f"{N:<5} {o_nmse:9.4f}  {r_nmse:8.4f}  {r_or:10.4f}  {ANCHORS.get(N, float('nan')):6.3f}  "
            f"{o_nmse / r_nmse:10.3f}  {o_t:6.3f}  {r_t:5.3f}  {o_t / r_t:10.3f}"
            f"  {o_c:7.3f}/{r_c:<7.3f}  {o_c / r_c:5.3f}"
            f"  | {float(fx[:, 0].mean()):20.4f}  {float(np.median(fx[:, 1])):.3f}  "
            f"{float(np.median(fx[:, 1])) / r_t:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
