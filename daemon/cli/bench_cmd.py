"""``asicrc bench``: run a reservoir on a benchmark task over seeds (docs/bench.md).

    asicrc bench TASK --reservoir KIND [--size N] [--seeds K] [--json] [--report DIR]
                 [--series FILE] [--horizon K] [--data FILE | --data mnist:DIR] [--simulate]
                 [--cluster local[:N] | --cluster tcp://HOST:PORT]

``--json`` prints one object on stdout; progress goes to stderr. ``--reservoir asic`` asks
``daemon.substrate:make_substrate(args)`` for a Substrate (real boards, or the emulator with --simulate).
``classify --data mnist:DIR`` reads the four MNIST / Fashion-MNIST IDX files of DIR (``--n-train`` /
``--n-test`` keep the first samples of each split). Spiking reservoirs (lsm, lsm-stdp, nalsm) add
``reservoir_info`` (branching factor, liquid rate, per-seed ``info()``) to the summary.
``--cluster`` runs each seed as a task on Dask distributed (docs/cluster.md): ``local[:N]`` starts N worker
processes here, an address joins a running scheduler; the result equals the serial run's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from daemon.cli.errors import (
    RuntimeFailure,
    UsageError,
    check_output_dir,
    cluster_errors,
    plain,
    positive_float,
    positive_int,
)
from daemon.cli.progress import Feedback
from reservoir.bench import run_bench
from reservoir.distributed import ClusterError, connect, seed_mapper  # Dask only inside connect()
from reservoir.progress import listening
from reservoir.registry import REGISTRY, UnsupportedTask, recording
from reservoir.tasks import TASKS, TaskDataError
from reservoir.tasks.base import ClassificationTask

MNIST_PREFIX = "mnist:"
#: Reservoirs whose info() carries a branching factor, reported as summary["reservoir_info"].
SPIKING = ("lsm", "lsm-stdp", "nalsm")


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand."""
    p = subparsers.add_parser(
        "bench",
        help="benchmark a reservoir on a task",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", choices=TASKS, help="benchmark task")
    p.add_argument("--reservoir", "-r", required=True, choices=sorted(REGISTRY), help="reservoir kind")
    p.add_argument(
        "--size", type=positive_int, default=None, help="state size N (default: the reservoir's, esn 100)"
    )
    p.add_argument("--seeds", type=positive_int, default=3, help="reservoir seeds 0..K-1 (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display on stderr")
    p.add_argument("--report", metavar="DIR", help="write plots and summary tables into DIR")
    p.add_argument("--series", metavar="FILE", help="forecast: one-column .npy or .csv series")
    p.add_argument("--horizon", type=positive_int, default=1, help="forecast: steps ahead (default 1)")
    p.add_argument(
        "--data",
        metavar="FILE",
        help="classify: .npz with X, y and optionally n_train, or mnist:DIR (IDX files)",
    )
    p.add_argument(
        "--n-train", type=positive_int, default=None, help="generated tasks and mnist: training steps/samples"
    )
    p.add_argument(
        "--n-test", type=positive_int, default=None, help="generated tasks and mnist: test steps/samples"
    )
    p.add_argument("--rate", type=positive_float, default=None, help="poisson-null: events/s per chip")
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="reservoir option, repeatable (esn: spectral_radius, leak, input_scaling, bias_scaling)",
    )
    p.add_argument("--simulate", action="store_true", help="asic: run on the emulator (accelerated clock)")
    p.add_argument(
        "--no-null", action="store_true", help="asic: skip the poisson-null run at the measured rate"
    )
    p.add_argument("--config", metavar="FILE", help="asic: daemon config for the substrate")
    p.add_argument(
        "--chips", type=positive_int, default=1, help="asic --simulate: emulated chips (default 1)"
    )
    p.add_argument(
        "--slot-ns", type=positive_int, default=1_000_000, help="asic: sub-slot length in ns (default 1 ms)"
    )
    p.add_argument(
        "--time-scale", type=positive_float, default=None, help="asic --simulate: clock acceleration"
    )
    p.add_argument(
        "--plant",
        action="append",
        default=[],
        metavar="KIND=GAIN",
        help="asic --simulate: planted input-dependent dynamics, repeatable: echo=G, threshold=G",
    )
    p.add_argument(
        "--plant-param",
        action="append",
        default=[],
        metavar="KIND.NAME=VALUE",
        help="asic --simulate: a planted kind's parameter, repeatable (e.g. echo.tau_ms=300)",
    )
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        default=None,
        help="run the seeds as Dask tasks: local[:N] worker processes or tcp://HOST:PORT (docs/cluster.md)",
    )
    p.add_argument("--cache", metavar="DIR", help="liquids: per-seed features + stage 1, resumable")
    p.add_argument("--save-liquid", metavar="DIR", help="liquids: write stage-1 checkpoints into DIR")
    p.add_argument("--load-liquid", metavar="DIR", help="liquids: stage 1 from the checkpoints of DIR")
    p.add_argument("--readout", choices=("ridge", "softmax"), default="ridge", help="liquids: readout")
    p.set_defaults(func=run)


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return _clean(x.item())
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def mnist_task(data: str, n_train: int | None = None, n_test: int | None = None) -> ClassificationTask:
    """``mnist:DIR`` -> the MNIST-layout IDX files of DIR as a task (first n_train / n_test samples)."""
    from reservoir.spiking.idx import load_mnist_dir  # NumPy only, no torch

    directory = data[len(MNIST_PREFIX) :]
    if not directory:
        raise TaskDataError("--data mnist:DIR needs a directory holding the four MNIST IDX files")
    path = Path(directory).expanduser()
    try:
        X_train, y_train, X_test, y_test = load_mnist_dir(path)
    except TaskDataError as exc:
        raise TaskDataError(f"--data {data}: {exc}") from exc
    for name, n in (("--n-train", n_train), ("--n-test", n_test)):
        if n is not None and n < 1:
            raise TaskDataError(f"{name} must be >= 1, got {n}")
    X_train, y_train = X_train[:n_train], y_train[:n_train]
    X_test, y_test = X_test[:n_test], y_test[:n_test]
    info = {"source": str(path), "input_max": 255.0}  # pixels / 255 for the liquids (docs/spiking.md)
    return ClassificationTask(f"mnist:{path.name}", X_train, y_train, X_test, y_test, info=info)


def reservoir_info(built: list[object], infos: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """Mean branching factor and liquid rate over the reservoirs built (one per seed), plus each info()
    (``infos``: those info() dicts already taken, e.g. on cluster workers)."""
    if infos is None:
        infos = [i() for i in (getattr(r, "info", None) for r in built) if callable(i)]
    if not infos:
        return None

    def mean(key: str) -> float:
        vals = [float(d[key]) for d in infos if d.get(key) is not None and math.isfinite(float(d[key]))]
        return float(np.mean(vals)) if vals else math.nan

    return {
        "branching_factor": mean("branching_factor"),
        "branching_factor_per_seed": [d.get("branching_factor") for d in infos],
        "mean_rate_hz": mean("mean_rate_hz"),
        "per_seed": infos,
    }


def _substrate_factory(args: argparse.Namespace) -> Any:
    try:
        make = importlib.import_module("daemon.substrate").make_substrate
    except (ImportError, AttributeError) as exc:
        raise RuntimeFailure(
            "--reservoir asic needs daemon.substrate.make_substrate, which is not available "
            f"in this build ({exc}). The Python API runs asic on reservoir.substrate.RateModelSubstrate."
        ) from exc
    return make(args)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """``--set KEY=VALUE`` items (numbers as floats) and ``--rate``; :class:`UsageError` when malformed."""
    options: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            options[key] = float(value)
        except ValueError:
            options[key] = value
    if args.rate is not None:
        if args.reservoir != "poisson-null":
            raise UsageError("--rate applies to --reservoir poisson-null only")
        options["rate_hz"] = args.rate
    return options


def _long_run(args: argparse.Namespace, task: Any, task_opts: dict[str, Any], options: Any, step: Any) -> Any:
    """Liquids on a classification task: the result of reservoir.spiking.longrun, else None (run_bench's)."""
    from reservoir.spiking.longrun import long_run  # torch only once a liquid is built

    try:
        go = long_run(args, task, task_opts, SPIKING)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return None if go is None else go(options, step)


def _open_cluster(args: argparse.Namespace) -> Any:
    """The Dask session of ``--cluster`` (None without it: Dask is then never imported)."""
    if args.cluster is None:
        return None
    with cluster_errors():
        return connect(args.cluster)


def run(args: argparse.Namespace) -> int:
    """Handler: run the benchmark and print the result (then write --report, if asked)."""
    options = _options(args)
    report_dir = check_output_dir(args.report, "--report") if args.report else None  # before computing
    substrate = None
    if (args.plant or args.plant_param) and not (args.reservoir == "asic" and args.simulate):
        print("asicrc bench: --plant/--plant-param need --reservoir asic --simulate", file=sys.stderr)
        return 2
    if args.cluster is not None and args.reservoir == "asic":
        raise UsageError(
            "--cluster does not apply to --reservoir asic: its substrate is attached to this host"
        )
    if args.reservoir == "asic":
        options["slot_ns"] = args.slot_ns
        try:
            substrate = options["substrate"] = _substrate_factory(args)
        except (ValueError, OSError) as exc:
            raise UsageError(str(exc)) from exc
    task_options = {
        "series": args.series,
        "horizon": args.horizon,
        "data": args.data,
        "n_train": args.n_train,
        "n_test": args.n_test,
    }
    built: list[object] = []
    cluster = _open_cluster(args)
    try:
        task: Any = args.task
        if args.task == "classify" and args.data and args.data.startswith(MNIST_PREFIX):
            task = mnist_task(args.data, args.n_train, args.n_test)
        with Feedback(args.quiet) as feedback, ExitStack() as stack:
            feedback.step(f"{args.task} x {args.reservoir}: starting")
            stack.enter_context(listening(feedback.detail))  # batches and stage-1 samples of spiking kinds
            if args.reservoir in SPIKING:
                built = stack.enter_context(recording(args.reservoir))
            result = _long_run(args, task, task_options, options, feedback.step) or run_bench(
                task,
                args.reservoir,
                size=args.size,
                seeds=args.seeds,
                options=options,
                task_options=task_options,
                progress=feedback.step,
                with_null=not args.no_null,
                map_seeds=None if cluster is None else seed_mapper(cluster.client),
            )
    except (TaskDataError, UnsupportedTask, ImportError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    except ClusterError as exc:
        raise RuntimeFailure(str(exc)) from exc
    finally:
        close = getattr(substrate, "close", None)
        if callable(close):
            close()
        if cluster is not None:
            cluster.close()
    info = reservoir_info(built, result.extra.get("reservoir_info"))
    summary = _clean({**result.summary, "reservoir_info": info} if info else result.summary)
    _print_summary(summary, args.json)
    if report_dir is not None:
        from reservoir.report import write_report

        try:
            with Feedback(args.quiet) as feedback:
                feedback.step(f"writing the report into {report_dir}")
                paths = write_report(report_dir, summary, result.y_test, result.y_pred)
        except OSError as exc:
            raise RuntimeFailure(f"--report {args.report}: {exc} (the result above is complete)") from exc
        print("report: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def noise_floor_line(nf: dict[str, Any]) -> str:
    """The shot-noise floor of the features in words (None = infinite: no events in a slot)."""

    def num(key: str, fmt: str) -> str:
        v = nf.get(key)
        return "inf" if v is None else format(float(v), fmt)

    return (
        f"shot-noise floor at {num('mean_count_per_slot', '.3g')} events per slot and chip: "
        f"count {num('count', '.1%')} relative, log-interval mean {num('log_iv_mean', '.3f')}, "
        f"invalid fraction {num('invalid_frac', '.3f')} (absolute)"
    )


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    """The result on stdout: one JSON object, or a few lines of text."""
    if as_json:
        print(json.dumps(summary), flush=True)
        return
    ci = summary["ci95"]
    ci_s = f" (95 % CI {ci[0]:.4g} .. {ci[1]:.4g})" if ci else ""
    print(
        f"{summary['task']} / {summary['reservoir']} (state {summary['state_dim']}): "
        f"{summary['metric']} = {summary['value']:.4g}{ci_s} over {len(summary['seeds'])} seed(s); "
        f"train {summary['n_train']}, test {summary['n_test']}"
    )
    if "reservoir_info" in summary:
        ri = summary["reservoir_info"]
        bf, hz = ri["branching_factor"], ri["mean_rate_hz"]
        bf_s = "n/a" if bf is None else f"{bf:.3f}"
        hz_s = "n/a" if hz is None else f"{hz:.3g}"
        print(f"branching factor {bf_s}, liquid rate {hz_s} Hz (mean over seeds)")
    if "noise_floor" in summary:
        print(noise_floor_line(summary["noise_floor"]))
    if "null" in summary:
        null = summary["null"]
        rate, value = null["rate_hz"], null["value"]
        print(f"poisson-null at {rate:.4g} events/s per chip: {summary['metric']} = {value:.4g}")
    sys.stdout.flush()
