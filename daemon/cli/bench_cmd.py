"""``asicrc bench``: run a reservoir on a benchmark task over seeds (docs/bench.md).

    asicrc bench TASK --reservoir KIND [--size N] [--seeds K] [--json] [--report DIR]
                 [--series FILE] [--horizon K] [--data FILE | --data mnist:DIR] [--simulate]
                 [--cluster local[:N] | --cluster tcp://HOST:PORT]

``--json`` prints one object on stdout; progress goes to stderr. ``--reservoir asic`` asks
``daemon.substrate:make_substrate(args)`` for a Substrate (real boards, or the emulator with --simulate).
``classify --data mnist:DIR`` reads the four MNIST / Fashion-MNIST IDX files of DIR (``--n-train`` /
``--n-test`` keep the first samples of each split). Spiking reservoirs (lsm, lsm-stdp, nalsm) add
``reservoir_info`` (branching factor, liquid rate, per-seed ``info()``) to the summary and take ``--device
cpu|cuda|auto`` (docs/spiking.md, "Devices"); the run itself is :func:`reservoir.bench_session.run_session`.
``--cluster`` runs each seed as a task on Dask distributed (docs/cluster.md): ``local[:N]`` starts N worker
processes here, an address joins a running scheduler; the result equals the serial run's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from daemon.cli.cluster_opts import resolve_cluster
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
from daemon.exit_codes import EXIT_OK
from reservoir.bench import NULL_DRAWS
from reservoir.bench_session import SPIKING, run_session
from reservoir.distributed import ClusterError, connect, seed_mapper  # Dask only inside connect()
from reservoir.registry import REGISTRY, UnsupportedTask
from reservoir.tasks import TASKS, TaskDataError


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
    p.add_argument(
        "--simulate",
        action="store_true",
        help="asic: run the daemon's board path on an in-process emulator, on emulated time (deterministic)",
    )
    p.add_argument(
        "--host-time",
        action="store_true",
        help="asic --simulate: serve the emulator on ptys on the host clock (x --time-scale) instead",
    )
    p.add_argument(
        "--no-null", action="store_true", help="asic: skip the poisson-null run at the measured rate"
    )
    p.add_argument(
        "--null-draws",
        type=positive_int,
        default=NULL_DRAWS,
        metavar="K",
        help=f"asic: Poisson realisations averaged per seed in the matched null (default {NULL_DRAWS})",
    )
    p.add_argument("--config", metavar="FILE", help="daemon config: asic's substrate; [cluster] otherwise")
    p.add_argument(
        "--chips", type=positive_int, default=1, help="asic --simulate: emulated chips (default 1)"
    )
    p.add_argument(
        "--slot-ns", type=positive_int, default=1_000_000, help="asic: sub-slot length in ns (default 1 ms)"
    )
    p.add_argument(
        "--time-scale", type=positive_float, default=None, help="asic --host-time: clock acceleration"
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
    p.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default=None,
        help="liquids: torch device (default auto: cuda when available, else cpu; docs/spiking.md)",
    )
    p.set_defaults(func=run)


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
    if args.device is not None:
        if args.reservoir not in SPIKING:
            raise UsageError(f"--device applies to --reservoir {', '.join(SPIKING)} only")
        from reservoir.spiking.device import resolve_device  # torch only when asked

        try:
            resolve_device(args.device)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        options["device"] = args.device
    return options


def _open_cluster(args: argparse.Namespace) -> Any:
    """The Dask session of ``--cluster`` (None without it: Dask is then never imported)."""
    if args.cluster is None:
        return None
    with cluster_errors():
        return connect(args.cluster, args.cluster_timeout_s)


def run(args: argparse.Namespace) -> int:
    """Handler: run the benchmark and print the result (then write --report, if asked)."""
    resolve_cluster(args, config_applies=args.reservoir != "asic")  # --cluster, else [cluster] of --config
    options = _options(args)
    report_dir = check_output_dir(args.report, "--report") if args.report else None  # before computing
    substrate = None
    if (args.plant or args.plant_param) and not (args.reservoir == "asic" and args.simulate):
        raise UsageError("--plant/--plant-param need --reservoir asic --simulate")
    if args.host_time and not args.simulate:
        raise UsageError("--host-time needs --simulate (it chooses how the emulator is timed)")
    if args.time_scale is not None and not args.host_time:
        raise UsageError(
            "--time-scale needs --simulate --host-time: on emulated time (the default) it has no meaning"
        )
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
    cluster = _open_cluster(args)
    try:
        with Feedback(args.quiet) as feedback:
            feedback.step(f"{args.task} x {args.reservoir}: starting")
            result, summary = run_session(
                args.task,
                args.reservoir,
                size=args.size,
                seeds=args.seeds,
                options=options,
                task_options=task_options,
                with_null=not args.no_null,
                null_draws=args.null_draws,
                map_seeds=None if cluster is None else seed_mapper(cluster.client),
                progress=feedback.step,
                detail=feedback.detail,  # batches and stage-1 samples of spiking kinds
                long_run=args,  # --cache/--save-liquid/--load-liquid/--readout (reservoir/spiking/longrun.py)
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
    return EXIT_OK


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
