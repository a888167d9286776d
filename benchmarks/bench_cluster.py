"""Serial vs Dask LocalCluster: a bench seed grid, and the tree-summed readout (docs/cluster.md).

    .venv/bin/python benchmarks/bench_cluster.py [--seeds 12] [--size 300] [--n-train 4000] [--n-test 1000]
        [--workers 1 2] [--streams 20] [--events 20000] [--rows 200000] [--features 200] [--shards 8]
        [--only seeds streams readout] [--json]

1. ``run_bench("narma10", "esn")`` over seeds 0..K-1 serially, then with one task per seed on ``local:N``
   for each N of ``--workers``: wall time, ratio serial / cluster (serial with the default BLAS threads,
   and with one BLAS thread as a worker has), overhead per task ((cluster time x N - one-thread serial
   time) / K, i.e. the time per task not spent computing when the workers were perfectly busy), cluster
   start-up time, and whether the summaries are identical (beside a second
   serial run: at state sizes of a few hundred the serial run does not repeat itself bit for bit either).
2. ``asicrc analyze``'s per-stream statistics (Monte-Carlo p-values on) of ``--streams`` synthetic Poisson
   streams of ``--events`` events, serially and one task per stream; the verdicts (one correction over
   all streams, on the client) compared: JSON bit for bit, verdict labels, adjusted p-values. (The ACF uses
   BLAS dot products, whose rounding depends on the BLAS thread count: workers run one thread.)
3. A ridge readout on ``--rows`` x ``--features`` synthetic rows in ``--shards`` shards, generated on the
   workers from their seed and tree-summed there (:func:`reservoir.distributed.fit_sharded`), against one
   process fitting the same rows: time ratio and max relative prediction difference. Above 2 GiB of
   features the one process cannot hold them twice and adds the shards one after the other into its
   statistics (``RidgeReadout.partial_fit``), as a host without Dask would (the issue's size:
   ``--only readout --rows 10000000 --workers 2``, 16 GB of features, ~5 GB per worker at a time).

The machine's load average is printed: on a shared 2-core host do not expect a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from threadpoolctl import threadpool_limits

from reservoir.bench import run_bench
from reservoir.distributed import connect, fit_sharded, map_calls, seed_mapper
from reservoir.readout import RidgeReadout
from reservoir.timing import compute_stream, decide, synth

#: ``--only`` choices -> result keys.
PARTS = {"seeds": "seed_grid", "streams": "analyze_streams", "readout": "readout"}


def synthetic_shard(spec: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Shard ``(seed, rows, features)``: correlated features and a noisy linear target (deterministic)."""
    seed, rows, d = spec
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(12345).normal(size=d)  # the same truth in every shard
    X = rng.normal(size=(rows, d)) + 0.5 * rng.normal(size=(rows, 1))
    y = X @ w + rng.normal(size=rows)
    return X, y


def _strip(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k != "elapsed_s"}


def _rel(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Max relative difference of the per-seed values of two summaries."""
    x, y = np.asarray(a["per_seed"]), np.asarray(b["per_seed"])
    return float(np.max(np.abs(x - y) / np.abs(y)))


def bench_seeds(args: argparse.Namespace) -> dict[str, Any]:
    seeds = list(range(args.seeds))
    opts = {"n_train": args.n_train, "n_test": args.n_test}
    t0 = time.perf_counter()
    serial = run_bench("narma10", "esn", size=args.size, seeds=seeds, task_options=opts).summary
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    with threadpool_limits(1):  # as on a worker (Dask sets OMP/OPENBLAS_NUM_THREADS=1 there)
        again = run_bench("narma10", "esn", size=args.size, seeds=seeds, task_options=opts).summary
    t_one = time.perf_counter() - t0
    out: dict[str, Any] = {"tasks": len(seeds), "serial_s": round(t_serial, 3), "clusters": []}
    out["serial_1thread_s"] = round(t_one, 3)
    out["serial_repeat_identical"] = _strip(again) == _strip(serial)
    out["serial_repeat_max_rel_diff"] = _rel(again, serial)
    for n in args.workers:
        t0 = time.perf_counter()
        with connect(f"local:{n}") as cluster:
            t_start = time.perf_counter() - t0
            mapper = seed_mapper(cluster.client)
            run_bench(
                "narma10", "esn", size=args.size, seeds=[0], task_options=opts, map_seeds=mapper
            )  # warm
            t0 = time.perf_counter()
            dist = run_bench(
                "narma10", "esn", size=args.size, seeds=seeds, task_options=opts, map_seeds=mapper
            )
            t_dist = time.perf_counter() - t0
        out["clusters"].append(
            {
                "workers": n,
                "startup_s": round(t_start, 3),
                "wall_s": round(t_dist, 3),
                "speedup": round(t_serial / t_dist, 3),
                "speedup_vs_1thread": round(t_one / t_dist, 3),
                "overhead_per_task_s": round((t_dist * n - t_one) / len(seeds), 4),
                "identical": _strip(dist.summary) == _strip(serial),
                "max_rel_diff": _rel(dist.summary, serial),
            }
        )
    return out


def _verdicts(stats: list[Any]) -> list[dict[str, Any]]:
    """The verdicts with one Holm correction over all streams (JSON-able dicts)."""
    return [r.to_json() for r in decide(stats)]


def _p_diff(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    """Max relative difference of the adjusted p-values of two verdict lists."""
    worst = 0.0
    for x, y in zip(a, b):
        for k, v in x["p_adjusted"].items():
            w = y["p_adjusted"][k]
            if np.isfinite(v) and v != w:
                worst = max(worst, abs(v - w) / abs(v))
    return worst


def bench_streams(args: argparse.Namespace) -> dict[str, Any]:
    """``asicrc analyze``'s per-stream work (compute_stream with Monte-Carlo p-values) over --streams
    synthetic Poisson streams: serial vs one task per stream (reading recordings not included)."""
    rng = np.random.default_rng(3)
    streams = [synth.poisson(args.events, 5.0, rng) for _ in range(args.streams)]
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((t,), {"name": f"s{i}", "seed": i}) for i, t in enumerate(streams)
    ]
    t0 = time.perf_counter()
    serial = [compute_stream(*a, **kw) for a, kw in calls]
    t_serial = time.perf_counter() - t0
    ref = _verdicts(serial)
    out: dict[str, Any] = {"streams": len(streams), "events": args.events, "serial_s": round(t_serial, 3)}
    out["clusters"] = []
    for n in args.workers:
        with connect(f"local:{n}") as cluster:
            t0 = time.perf_counter()
            dist = map_calls(cluster.client, compute_stream, calls)
            t_dist = time.perf_counter() - t0
        got = _verdicts(dist)
        same = json.dumps(got, default=str) == json.dumps(ref, default=str)
        labels = [r["verdict"] for r in got] == [r["verdict"] for r in ref]
        out["clusters"].append(
            {
                "workers": n,
                "wall_s": round(t_dist, 3),
                "speedup": round(t_serial / t_dist, 3),
                "overhead_per_task_s": round((t_dist * n - t_serial) / len(streams), 4),
                "identical_json": same,
                "same_verdicts": labels,
                "max_rel_p_adjusted_diff": _p_diff(ref, got),
            }
        )
    return out


def bench_readout(args: argparse.Namespace) -> dict[str, Any]:
    rows = args.rows // args.shards
    shards = [(1000 + i, rows, args.features) for i in range(args.shards)]
    t0 = time.perf_counter()
    if args.rows * args.features * 8 <= 2**31:  # fits: one fit on the concatenated rows
        parts = [synthetic_shard(s) for s in shards]
        X = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        del parts
        ref = RidgeReadout(alpha=1.0).fit(X, y)
        del X, y
    else:  # too large to hold twice: the same rows shard by shard into one process's statistics
        ref = RidgeReadout(alpha=1.0)
        for s in shards:
            ref.partial_fit(*synthetic_shard(s))
    t_one = time.perf_counter() - t0
    Xt, _ = synthetic_shard((7, 2000, args.features))
    out: dict[str, Any] = {"rows": rows * args.shards, "features": args.features, "shards": args.shards}
    out["one_process_s"] = round(t_one, 3)
    out["clusters"] = []
    for n in args.workers:
        with connect(f"local:{n}") as cluster:
            t0 = time.perf_counter()
            dist = fit_sharded(cluster.client, shards, RidgeReadout(alpha=1.0), load=synthetic_shard)
            t_dist = time.perf_counter() - t0
        p, q = dist.predict(Xt), ref.predict(Xt)
        out["clusters"].append(
            {
                "workers": n,
                "wall_s": round(t_dist, 3),
                "ratio_one_over_cluster": round(t_one / t_dist, 3),
                "max_rel_pred_diff": float(np.max(np.abs(p - q)) / np.max(np.abs(q))),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=200)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run these parts only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result: dict[str, Any] = {"loadavg_before": os.getloadavg(), "cpus": os.cpu_count()}
    for part, run in (("seeds", bench_seeds), ("streams", bench_streams), ("readout", bench_readout)):
        if part in args.only:
            result[PARTS[part]] = run(args)
    result["loadavg_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(result))
        return
    print(f"load average {result['loadavg_before']} -> {result['loadavg_after']}, {result['cpus']} cpus")
    if "seed_grid" in result:
        _print_seeds(result["seed_grid"])
    if "analyze_streams" in result:
        _print_streams(result["analyze_streams"])
    if "readout" in result:
        _print_readout(result["readout"])


def _print_seeds(g: dict[str, Any]) -> None:
    print(
        f"seed grid: {g['tasks']} tasks, serial {g['serial_s']:.2f} s, with one BLAS thread "
        f"{g['serial_1thread_s']:.2f} s; the second serial run identical "
        f"{g['serial_repeat_identical']} (max relative per-seed difference "
        f"{g['serial_repeat_max_rel_diff']:.1e})"
    )
    for c in g["clusters"]:
        print(
            f"  local:{c['workers']}: {c['wall_s']:.2f} s (start-up {c['startup_s']:.2f} s), "
            f"serial/cluster {c['speedup']:.2f} (one-thread serial/cluster {c['speedup_vs_1thread']:.2f}), "
            f"overhead {1000 * c['overhead_per_task_s']:.0f} ms/task, "
            f"identical {c['identical']} (max relative per-seed difference {c['max_rel_diff']:.1e})"
        )


def _print_streams(a: dict[str, Any]) -> None:
    print(f"analyze streams: {a['streams']} x {a['events']} events, serial {a['serial_s']:.2f} s")
    for c in a["clusters"]:
        print(
            f"  local:{c['workers']}: {c['wall_s']:.2f} s, serial/cluster {c['speedup']:.2f}, "
            f"overhead {1000 * c['overhead_per_task_s']:.0f} ms/task, "
            f"identical JSON {c['identical_json']}, same verdicts {c['same_verdicts']}, max relative "
            f"difference of adjusted p {c['max_rel_p_adjusted_diff']:.1e}"
        )


def _print_readout(r: dict[str, Any]) -> None:
    shape = f"{r['rows']} x {r['features']} in {r['shards']} shards"
    print(f"readout: {shape}, one process {r['one_process_s']:.2f} s")
    for c in r["clusters"]:
        print(
            f"  local:{c['workers']}: {c['wall_s']:.2f} s, one/cluster {c['ratio_one_over_cluster']:.2f}, "
            f"max relative prediction difference {c['max_rel_pred_diff']:.2e}"
        )


if __name__ == "__main__":
    main()
