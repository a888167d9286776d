"""Spiking liquids: simulation speed (neuron-steps/s) and digits accuracy with branching factors.

Speed: the same liquid (N = 1000 and 8000, 64 inputs, digits-encoded Bernoulli input, 1 ms steps, batched)
simulated by torch event-driven (the default backend), CSR (the reference) and dense (N = 1000), each with
1 and 2 threads, by a plain NumPy + scipy.sparse batched LIF (implemented here, same equations) and, with
``--brian2``, Brian2's cython target in its own virtualenv (``.venv-brian2``, created on demand with
numpy<=2.2; skipped with a message if that fails). Every row carries the 1-minute load average (load1).

Accuracy: ``digits`` for lsm, lsm-stdp and nalsm at N = 1000 over paired seeds (seed s = split s and liquid
s for every model), beside the raw-input linear baseline and a same-size ESN, all through the shared
RidgeClassifierReadout(alpha="cv"). 95 % CIs are Student t over seeds; paired differences vs lsm too.

    .venv/bin/python benchmarks/bench_spiking.py                 # speed + accuracy, 5 seeds, 250 ms
    .venv/bin/python benchmarks/bench_spiking.py --speed --brian2
    .venv/bin/python benchmarks/bench_spiking.py --accuracy --seeds 5 --json
    .venv/bin/python benchmarks/bench_spiking.py --plastic       # stage 1 and NALSM vs LSM presentations
                                                                 # (numba kernel and torch loop side by side)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_plastic import plastic_cost, print_plastic  # noqa: E402

from reservoir.spiking import functional as F  # noqa: E402
from reservoir.spiking.liquid import Liquid, build_liquid  # noqa: E402
from reservoir.spiking.simulate import encoding_scale, simulate_fixed, spike_probabilities  # noqa: E402

BRIAN2_VENV = ROOT / ".venv-brian2"
BRIAN2_SCRIPT = Path(__file__).with_name("brian2_lif.py")
BRIAN2_REQS = ["brian2>=2.9,<3", "numpy<=2.2", "cython", "setuptools"]
# Reference figures (docs/methods.md), neuron-steps per second on a 2-core machine.
REF_NUMPY_M = 57.0  # NumPy + scipy.sparse batched LIF, N = 1000, batch 500
REF_BRIAN2_M = {1000: 17.5, 8000: 6.6}
TARGET_M = 100.0  # torch, N = 1000 batched


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def digits_probabilities(batch: int) -> np.ndarray:
    """Digits images as per-ms input probabilities, tiled to ``batch`` rows (float32)."""
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    p = spike_probabilities(X, encoding_scale(X))
    return np.asarray(p[np.arange(batch) % len(p)], dtype=np.float32)


# ---------------------------------------------------------------- NumPy + scipy.sparse reference


def numpy_lif(liquid: Liquid, p_in: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """The batched LIF of :func:`simulate_fixed` in NumPy/scipy.sparse (float32); spike counts (n, B)."""
    n, batch = liquid.n, p_in.shape[0]
    rec = liquid.recurrent
    w_rec = sp.csr_matrix(
        (liquid.w0[rec], (liquid.post[rec], liquid.pre[rec])), shape=(n, n), dtype=np.float32
    )
    w_inp = sp.csr_matrix(
        (liquid.w0[~rec], (liquid.post[~rec], liquid.pre[~rec] - n)), shape=(n, liquid.n_in), dtype=np.float32
    )
    rng = np.random.default_rng(seed)
    p_t = np.ascontiguousarray(p_in.T)
    v = np.zeros((n, batch), np.float32)
    i = np.zeros_like(v)
    ref = np.zeros_like(v)
    s = np.zeros_like(v)
    s_in = np.zeros((liquid.n_in, batch), np.float32)
    counts = np.zeros_like(v)
    d_u, k_v = np.float32(math.exp(-1.0)), np.float32(1.0 - 1.0 / F.TAU_V_MS)
    for _ in range(steps):
        syn = w_rec @ s + w_inp @ s_in
        i = d_u * (i + syn)
        v = k_v * v + i
        spk = (v >= F.V_TH) & (ref <= 0)
        v[spk] = F.V_RESET
        ref = np.maximum(ref - 1, 0)
        ref[spk] = F.T_REF_MS
        s = spk.astype(np.float32)
        counts += s
        s_in = (rng.random(p_t.shape, dtype=np.float32) < p_t).astype(np.float32)
    return counts


# ---------------------------------------------------------------- Brian2 (own venv)


def ensure_brian2_venv() -> Path | None:
    """Python of .venv-brian2 with Brian2, created on demand; None (with a message) on failure."""
    py = BRIAN2_VENV / "bin" / "python"
    try:
        if not py.exists():
            log(f"creating {BRIAN2_VENV} for Brian2 ...")
            subprocess.run([sys.executable, "-m", "venv", str(BRIAN2_VENV)], check=True, capture_output=True)
        check = subprocess.run([str(py), "-c", "import brian2"], capture_output=True)
        if check.returncode != 0:
            log(f"installing {' '.join(BRIAN2_REQS)} into {BRIAN2_VENV} ...")
            subprocess.run(
                [str(py), "-m", "pip", "install", "-q", *BRIAN2_REQS],
                check=True,
                capture_output=True,
                timeout=900,
            )
        return py
    except (subprocess.SubprocessError, OSError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        log(f"Brian2 skipped: cannot set up {BRIAN2_VENV}: {exc} {err.decode(errors='replace')[-400:]}")
        return None


def run_brian2(liquid: Liquid, p_in: np.ndarray, steps: int, threads: int) -> dict[str, Any] | None:
    """Run benchmarks/brian2_lif.py on the same liquid; returns its JSON result or None."""
    py = ensure_brian2_venv()
    if py is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        net = Path(tmp) / "net.npz"
        np.savez(net, n=liquid.n, n_in=liquid.n_in, pre=liquid.pre, post=liquid.post, w=liquid.w0, p=p_in)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        proc = subprocess.run(
            [str(py), str(BRIAN2_SCRIPT), str(net), "--steps", str(steps)],
            capture_output=True,
            env=env,
            timeout=3600,
        )
    if proc.returncode != 0:
        log(f"Brian2 run failed: {proc.stderr.decode(errors='replace')[-600:]}")
        return None
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------- speed


def time_call(fn: Any, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (s)."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def speed_one(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Neuron-steps/s of every engine on one liquid of ``n`` neurons."""
    rows: list[dict[str, Any]] = []
    batch = args.batch if n <= 1000 else args.batch_large
    liquid = build_liquid(n, 64, seed=0)
    p_np = digits_probabilities(batch)
    p = torch.from_numpy(p_np)
    work = n * batch * args.steps
    log(f"speed: N={n} batch={batch} steps={args.steps} synapses={liquid.n_syn}")

    def add(engine: str, seconds: float, rate_hz: float) -> None:
        row = {"n": n, "batch": batch, "steps": args.steps, "engine": engine, "seconds": seconds}
        row.update(m_neuron_steps_per_s=work / seconds / 1e6, rate_hz=rate_hz, load1=os.getloadavg()[0])
        rows.append(row)
        log(f"  {engine:<24} {row['m_neuron_steps_per_s']:8.1f} M neuron-steps/s (load {row['load1']:.2f})")

    rate: dict[str, float] = {}
    spikes: dict[str, float] = {}

    def run_torch(backend: str) -> None:
        gen = torch.Generator().manual_seed(0)
        out = simulate_fixed(liquid, p, args.steps, gen, backend=backend, threads=None)  # threads set here
        rate["hz"] = float(out.counts.mean()) * 1000.0 / args.steps
        spikes[backend] = float(out.counts.sum())

    def run_numpy() -> None:
        rate["hz"] = float(numpy_lif(liquid, p_np, args.steps, seed=0).mean()) * 1000.0 / args.steps

    # engines run round-robin, ``repeats`` rounds, best time each: on a shared host every engine then sees
    # the same load drift
    engines: list[tuple[str, int, Any]] = []
    for threads in args.threads:
        for backend in args.backends:
            if not (backend == "dense" and n > 1000):
                engines.append((f"torch-{backend} x{threads}", threads, lambda b=backend: run_torch(b)))
    engines.append(("numpy+scipy.sparse", max(args.threads), run_numpy))
    best: dict[str, float] = {name: math.inf for name, _, _ in engines}
    rates: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, threads, fn in engines:
            torch.set_num_threads(threads)
            best[name] = min(best[name], time_call(fn, 1))
            rates[name] = rate["hz"]
    for name, _, _ in engines:
        add(name, best[name], rates[name])
    if len(set(spikes.values())) > 1:  # event, csr and dense must give the same spikes (+-1 weights)
        log(f"  WARNING: backends disagree on the spike total: {spikes}")
    torch.set_num_threads(max(args.threads))
    if args.brian2:
        b_batch = min(batch, args.brian2_batch)
        res_b = run_brian2(liquid, p_np[:b_batch], args.steps, max(args.threads))
        if res_b is not None:
            row = {"n": n, "batch": b_batch, "steps": args.steps, "engine": "brian2-cython", **res_b}
            row["load1"] = os.getloadavg()[0]
            row["m_neuron_steps_per_s"] = n * b_batch * args.steps / res_b["seconds"] / 1e6
            rows.append(row)
            log(
                f"  {'brian2-cython':<24} {row['m_neuron_steps_per_s']:8.1f} M neuron-steps/s "
                f"(batch {b_batch})"
            )
    return rows


def speed(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Neuron-steps/s of every engine at each size."""
    return [row for n in args.sizes for row in speed_one(n, args)]


# ---------------------------------------------------------------- plasticity cost


# stage-1 speed and NALSM vs LSM presentation cost: benchmarks/bench_plastic.py


# ---------------------------------------------------------------- MNIST ablations


MNIST_ROWS = [  # (model, encoding, stage-1 samples), the most telling first
    ("raw-linear", "bench", 0),
    ("lsm", "paper", 0),
    ("nalsm", "paper", 500),
    ("lsm", "bench", 0),
    ("nalsm", "bench", 500),
    ("nalsm", "paper", 5000),
    ("lsm-stdp", "paper", 500),
]


def mnist_encodings(X_train: np.ndarray, X_test: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``bench``: what ``asicrc bench classify`` feeds the liquids (reservoir.tasks MinMaxScaler to [0, 1]
    on the training split: constant pixels -> 0.5, rarely lit ones stretched); ``paper``: pixels / 255."""
    from reservoir.tasks.base import MinMaxScaler

    sc = MinMaxScaler.fit(X_train, 0.0, 1.0)
    return {
        "bench": (sc.transform(X_train), sc.transform(X_test)),
        "paper": (X_train / 255.0, X_test / 255.0),
    }


def mnist_ablation(args: argparse.Namespace) -> dict[str, Any]:
    """Reduced-scale MNIST ablations: encoding and stage-1 length, ridge and softmax readouts, one seed."""
    from reservoir.readout import RidgeClassifierReadout
    from reservoir.spiking import make_liquid_reservoir
    from reservoir.spiking.idx import load_mnist_dir
    from reservoir.spiking.reservoir import softmax_readout

    X_train, y_train, X_test, y_test = load_mnist_dir(args.mnist)
    Xtr, ytr = X_train[: args.mnist_train], y_train[: args.mnist_train]
    Xte, yte = X_test[: args.mnist_test], y_test[: args.mnist_test]
    enc = mnist_encodings(Xtr, Xte)
    rows = []
    for i, (model, encoding, n_init) in enumerate(MNIST_ROWS):
        if args.mnist_rows is not None and i not in args.mnist_rows:
            continue
        t0 = time.perf_counter()
        Ftr, Fte = enc[encoding]
        info: dict[str, Any] = {}
        if model != "raw-linear":
            opts = {"presentation_ms": args.ms, "n_init": n_init, "batch_size": args.sim_batch}
            r = make_liquid_reservoir(model, Xtr.shape[1], args.size, args.mnist_seed, **opts)
            Ftr, Fte = r.fit_transform(Ftr), r.transform(Fte)
            info = r.info()
        ridge = float(np.mean(RidgeClassifierReadout(alpha="cv").fit(Ftr, ytr).predict(Fte) == yte))
        soft = float(softmax_readout().fit(Ftr, ytr).score(Fte, yte)) if model != "raw-linear" else math.nan
        row = {"model": model, "encoding": encoding, "n_init": n_init, "ridge": ridge, "softmax": soft}
        row.update(seconds=time.perf_counter() - t0, load1=os.getloadavg()[0])
        for key in ("branching_factor", "mean_rate_hz", "input_rate_hz", "init_seconds"):
            if key in info:
                row[key] = info[key]
        rows.append(row)
        log(
            f"mnist: {model:<10} {encoding:<5} n_init={n_init:<5} ridge={ridge:.4f} softmax={soft:.4f} "
            f"bf={row.get('branching_factor', math.nan):.3f} rate={row.get('mean_rate_hz', math.nan):.1f} Hz "
            f"in={row.get('input_rate_hz', math.nan):.1f} Hz "
            f"({row['seconds']:.0f} s, load {row['load1']:.2f})"
        )
    return {"n_train": len(ytr), "n_test": len(yte), "size": args.size, "ms": args.ms, "rows": rows}


# ---------------------------------------------------------------- accuracy


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the Student-t 95 % interval."""
    a = np.asarray(values, dtype=np.float64)
    if a.size < 2:
        return float(a.mean()), math.nan
    return float(a.mean()), float(stats.t.ppf(0.975, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Paired-seed digits accuracies for raw-linear, esn and the three liquids."""
    from reservoir.readout import RidgeClassifierReadout
    from reservoir.registry import ReservoirSpec
    from reservoir.spiking import make_liquid_reservoir
    from reservoir.tasks import digits_task

    torch.set_num_threads(max(args.threads))
    models = ["raw-linear", "esn", *args.kinds]
    per: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    for seed in range(args.seeds):
        task = digits_task(seed=seed)
        lo, hi = task.X_train.min(0), task.X_train.max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        Xtr = np.clip((task.X_train - lo) / span, 0, 1)
        Xte = np.clip((task.X_test - lo) / span, 0, 1)
        for model in models:
            t0 = time.perf_counter()
            info: dict[str, Any] = {}
            if model == "raw-linear":
                Ftr, Fte = Xtr, Xte
            elif model == "esn":
                from reservoir.esn import make_esn

                esn = make_esn(ReservoirSpec(n_inputs=64, seed=seed, size=args.size, kind="samples"))
                # the ESN reads each image as 8 rows of 8 pixels; its final state (size features, like the
                # liquid's spike counts) keeps the ridge-CV eigendecomposition at size x size
                Ftr, Fte = esn.fit_transform(Xtr)[:, -args.size :], esn.transform(Xte)[:, -args.size :]
            else:
                opts = {"presentation_ms": args.ms, "n_init": args.n_init, "batch_size": args.sim_batch}
                r = make_liquid_reservoir(model, 64, args.size, seed, **opts)
                Ftr = r.fit_transform(Xtr)
                Fte = r.transform(Xte)
                info = r.info()
            clf = RidgeClassifierReadout(alpha="cv").fit(Ftr, task.y_train)
            acc = float(np.mean(clf.predict(Fte) == task.y_test))
            row = {"seed": seed, "accuracy": acc, "seconds": time.perf_counter() - t0}
            for key in ("branching_factor", "mean_rate_hz", "init_seconds"):
                if key in info:
                    row[key] = info[key]
            per[model].append(row)
            bf = f" bf={row['branching_factor']:.3f}" if "branching_factor" in row else ""
            log(f"accuracy: seed={seed} {model:<10} acc={acc:.4f}{bf} ({row['seconds']:.0f} s)")
    summary: dict[str, Any] = {}
    for model, rows in per.items():
        mean, half = ci95([r["accuracy"] for r in rows])
        s: dict[str, Any] = {"mean": mean, "ci95": half, "runs": rows}
        if rows and "branching_factor" in rows[0]:
            s["branching_factor"], s["branching_factor_ci95"] = ci95([r["branching_factor"] for r in rows])
            s["mean_rate_hz"] = float(np.mean([r["mean_rate_hz"] for r in rows]))
        summary[model] = s
    if "lsm" in per:
        for model in args.kinds:
            if model != "lsm" and per[model]:
                diffs = [a["accuracy"] - b["accuracy"] for a, b in zip(per[model], per["lsm"])]
                summary[model]["paired_diff_vs_lsm"], summary[model]["paired_diff_ci95"] = ci95(diffs)
    return {
        "task": "digits",
        "size": args.size,
        "presentation_ms": args.ms,
        "n_init": args.n_init,
        "seeds": args.seeds,
        "models": summary,
    }


# ---------------------------------------------------------------- output


def print_tables(result: dict[str, Any]) -> None:
    if result.get("speed"):
        print("\nSimulation speed (M neuron-steps/s, 1 ms steps, best of repeats)")
        print(f"{'N':>6} {'batch':>6} {'engine':<24} {'M/s':>8} {'rate Hz':>8}  vs numpy  load1")
        ref: dict[int, float] = {
            r["n"]: r["m_neuron_steps_per_s"] for r in result["speed"] if r["engine"] == "numpy+scipy.sparse"
        }
        for r in result["speed"]:
            ratio = r["m_neuron_steps_per_s"] / ref[r["n"]] if r["n"] in ref else math.nan
            rate, load = r.get("rate_hz", math.nan), r.get("load1", math.nan)
            print(
                f"{r['n']:>6} {r['batch']:>6} {r['engine']:<24} {r['m_neuron_steps_per_s']:8.1f} "
                f"{rate:8.1f}  {ratio:5.2f}x  {load:6.2f}"
            )
        print(
            f"  references: numpy ~{REF_NUMPY_M} M (N=1000, batch 500); Brian2 cython {REF_BRIAN2_M} M; "
            f"target >= {TARGET_M} M for torch at N=1000"
        )
    if result.get("plastic"):
        print_plastic(result["plastic"])
    if result.get("mnist"):
        mn = result["mnist"]
        print(
            f"\nMNIST ablations: {mn['n_train']} train / {mn['n_test']} test, N={mn['size']}, {mn['ms']} ms"
        )
        print(
            f"{'model':<10} {'encoding':<8} {'n_init':>6} {'ridge':>7} {'softmax':>7} "
            f"{'bf':>6} {'Hz':>6} {'s':>6}"
        )
        for r in mn["rows"]:
            print(
                f"{r['model']:<10} {r['encoding']:<8} {r['n_init']:>6} {r['ridge']:7.4f} {r['softmax']:7.4f} "
                f"{r.get('branching_factor', math.nan):6.3f} {r.get('mean_rate_hz', math.nan):6.1f} "
                f"{r['seconds']:6.0f}"
            )
    if result.get("accuracy"):
        acc = result["accuracy"]
        print(
            f"\ndigits accuracy, N={acc['size']}, {acc['presentation_ms']} ms, "
            f"{acc['seeds']} paired seeds (95 % CI)"
        )
        print(f"{'model':<11} {'accuracy':>18} {'branching factor':>20} {'rate Hz':>8} {'diff vs lsm':>18}")
        for model, s in acc["models"].items():
            bf = (
                f"{s['branching_factor']:.3f} +- {s['branching_factor_ci95']:.3f}"
                if "branching_factor" in s
                else "-"
            )
            rate = f"{s['mean_rate_hz']:.1f}" if "mean_rate_hz" in s else "-"
            diff = (
                f"{s['paired_diff_vs_lsm']:+.4f} +- {s['paired_diff_ci95']:.4f}"
                if "paired_diff_vs_lsm" in s
                else "-"
            )
            print(f"{model:<11} {s['mean']:.4f} +- {s['ci95']:.4f} {bf:>20} {rate:>8} {diff:>18}")
        print(
            "  paper (MNIST, N=1000): NALSM 95.96, LSM 95.30, LSM+STDP 89.46 %; "
            "NALSM branching factor ~1.1-1.2"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speed", action="store_true", help="only the speed part (default: both)")
    ap.add_argument("--accuracy", action="store_true", help="only the accuracy part (default: both)")
    ap.add_argument("--plastic", action="store_true", help="only stage-1 speed and NALSM presentation cost")
    ap.add_argument("--plastic-size", type=int, default=1000, help="plastic: liquid size")
    ap.add_argument("--plastic-batch", type=int, default=250, help="plastic: samples per presentation batch")
    ap.add_argument("--n-init-bench", type=int, default=200, help="plastic: stage-1 samples timed")
    ap.add_argument("--mnist", metavar="DIR", help="only the MNIST ablations, IDX files in DIR")
    ap.add_argument("--mnist-train", type=int, default=2000, help="mnist: first K training samples")
    ap.add_argument("--mnist-test", type=int, default=1000, help="mnist: first K test samples")
    ap.add_argument("--mnist-seed", type=int, default=0, help="mnist: liquid seed")
    ap.add_argument(
        "--mnist-rows", type=int, nargs="+", help="mnist: only these rows of MNIST_ROWS (0-based)"
    )
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout, tables suppressed")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000])
    ap.add_argument("--batch", type=int, default=500, help="speed batch at N <= 1000")
    ap.add_argument("--batch-large", type=int, default=100, help="speed batch at N > 1000")
    ap.add_argument("--steps", type=int, default=100, help="speed: simulated ms per run")
    ap.add_argument("--repeats", type=int, default=3, help="speed: round-robin rounds (best time kept)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--backends", nargs="+", default=["event", "csr", "dense"], help="torch backends (dense only N<=1000)"
    )
    ap.add_argument("--brian2", action="store_true", help="also run Brian2 (own venv, created on demand)")
    ap.add_argument("--brian2-batch", type=int, default=20, help="copies of the network Brian2 simulates")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--size", type=int, default=1000, help="accuracy: liquid / ESN size")
    ap.add_argument("--ms", type=int, default=250, help="accuracy: presentation per sample (ms)")
    ap.add_argument("--n-init", type=int, default=500, help="accuracy: NALSM stage-1 samples")
    ap.add_argument("--sim-batch", type=int, default=250, help="accuracy: samples simulated at once")
    ap.add_argument("--kinds", nargs="+", default=["lsm", "lsm-stdp", "nalsm"])
    args = ap.parse_args(argv)
    both = not (args.speed or args.accuracy or args.plastic or args.mnist)
    result: dict[str, Any] = {"torch": torch.__version__, "cpus": os.cpu_count()}
    if args.speed or both:
        result["speed"] = speed(args)
    if args.mnist:
        result["mnist"] = mnist_ablation(args)
    if args.plastic or both:
        result["plastic"] = plastic_cost(
            args, torch.from_numpy(digits_probabilities(max(args.n_init_bench, args.plastic_batch))), log
        )
    if args.accuracy or both:
        result["accuracy"] = accuracy(args)
    if args.json:
        print(json.dumps(result, default=float))
    else:
        print_tables(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
