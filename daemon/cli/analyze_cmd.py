"""``asicrc analyze``: timing statistics, artefact detection and a verdict per stream (docs/analyze.md).

    asicrc analyze RECORDING_DIR... [--by board|chip|point] [--clock host|wire] [--json] [--report DIR]
    asicrc analyze --timestamps FILE [--json] [--report DIR]

Reads the recording format of docs/recording-format.md (a torn ``.part`` keeps its whole record batches;
older formats are read as the current one; a damaged finished segment is an error naming it, which
``asicrc record recover DIR`` sets aside). ``--by point`` groups by the plan's point: each point's events at
its setpoint are one stream; ramp steps and events outside any point are transitions, counted apart and not
tested. Several recordings are analysed side by side, their streams named ``<run-id>/<stream>``. The work is
done by :mod:`daemon.analysis` and :mod:`reservoir.timing`. Bad input exits 2, a report that cannot be written
after the result was printed exits 1 (daemon/exit_codes.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon.analysis import (
    CLOCKS,
    Analysis,
    AnalysisInputError,
    Stream,
    analyse_streams,
    decide_outcomes,
    read_streams,
    read_timestamps,
    stream_calls,
    to_json,
    write_analysis_report,
)
from daemon.cli.cluster_opts import resolve_cluster
from daemon.cli.errors import (
    RuntimeFailure,
    UsageError,
    check_output_dir,
    cluster_errors,
    nonneg_int,
    open_unit,
)
from daemon.cli.progress import Feedback
from daemon.exit_codes import EXIT_OK
from daemon.point_streams import Transition
from reservoir.timing import StreamResult, compute_stream, summary

log = logging.getLogger(__name__)


class AnalyzeError(UsageError):
    """A user-facing input error (bad file, missing directory, damaged segment, too few events): exit 2."""


def _table(results: Sequence[StreamResult]) -> str:
    head = f"{'stream':<28} {'events':>8} {'rate Hz':>9} {'CV':>6} {'CV null95':>11} {'Fano min-max':>13} "
    head += f"{'KS p':>7} {'verdict':<12} kind / artefacts"
    lines = [head, "-" * len(head)]
    for r in results:
        s = r.stats
        fr = f"{min(s.fano.values()):.2f}-{max(s.fano.values()):.2f}" if s.fano else "-"
        band = f"{s.cv_null95[0]:.2f}-{s.cv_null95[1]:.2f}"
        lines.append(
            f"{s.name[:28]:<28} {s.n_events:>8} {s.rate_hz:>9.3g} {s.cv:>6.3f} {band:>11} {fr:>13} "
            f"{s.pvalues['ks']:>7.3g} {r.verdict:<12} {r.kind or ''}"
        )
        why = summary(r)
        if why:
            lines.append(f"{'':<28}   {why}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Handler of ``asicrc analyze``; bad input is an :class:`AnalyzeError` (exit 2, one line on stderr)."""
    try:
        with Feedback(args.quiet) as feedback:  # closed before the result is printed (stdout may be the tty)
            return _run(args, feedback)
    except AnalysisInputError as exc:
        raise AnalyzeError(str(exc)) from None


def _check_cluster_spec(spec: str) -> None:
    """A malformed --cluster fails before any recording is read."""
    from reservoir.cluster_spec import parse_spec

    try:
        parse_spec(spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _cluster_streams(args: argparse.Namespace, streams: list[Stream], feedback: Feedback) -> list[Any]:
    """``--cluster`` with ``--timestamps``: each stream's statistics as one Dask task (same arguments and
    seeds as the serial loop); a StreamStats or the stream's TooFewEvents per stream, in order
    (docs/cluster.md). Recordings are read on the workers instead (daemon/analysis/cluster.py)."""
    from reservoir.distributed import connect, map_calls
    from reservoir.timing import TooFewEvents

    feedback.step(f"{len(streams)} stream(s) as tasks on {args.cluster}")
    with cluster_errors(), connect(args.cluster, args.cluster_timeout_s) as cluster:
        calls = stream_calls(streams, not args.no_mc, args.seed)
        return map_calls(cluster.client, compute_stream, calls, catch=(TooFewEvents,))


def _run(args: argparse.Namespace, feedback: Feedback) -> int:
    clock = CLOCKS[args.clock]
    transitions: list[Transition] = []
    streams: list[Stream]
    evs: list[Any] = []
    report_dir = check_output_dir(args.report, "--report") if args.report else None  # before computing
    resolve_cluster(args)  # --cluster, else [cluster] of --config
    if args.cluster:
        _check_cluster_spec(args.cluster)
    if args.timestamps:
        if args.recording:
            raise AnalyzeError("give either RECORDING_DIR or --timestamps FILE, not both")
        path = Path(args.timestamps)
        streams = [Stream(name=path.name, segments=[read_timestamps(path)])]
    elif args.recording and args.cluster:  # read on the workers (daemon/analysis/cluster.py)
        streams = []
    elif args.recording:
        dirs = [Path(r) for r in args.recording]
        bar = lambda d: feedback.track(d, "reading recordings")  # noqa: E731
        streams, evs = read_streams(dirs, args.by, clock, transitions, feedback.step, bar)
    else:
        raise AnalyzeError("give RECORDING_DIR or --timestamps FILE")
    rows: list[dict[str, Any]] | None = None  # the report's point rows, when computed on the workers
    if args.cluster and not streams:
        from daemon.analysis.cluster import analyze_on_cluster

        with cluster_errors():
            outcomes, remote_transitions, rows = analyze_on_cluster(
                args.recording,
                address=args.cluster,
                timeout_s=args.cluster_timeout_s,
                by=args.by,
                clock=clock,
                mc=not args.no_mc,
                seed=args.seed,
                report=bool(args.report),
                step=feedback.step,
            )
        transitions.extend(remote_transitions)
        analysis = decide_outcomes(outcomes, alpha=args.alpha, correction=args.correction)
    else:
        feedback.step(f"{len(streams)} stream(s)")
        remote = _cluster_streams(args, streams, feedback) if args.cluster else None
        analysis = analyse_streams(
            streams,
            mc=not args.no_mc,
            seed=args.seed,
            alpha=args.alpha,
            correction=args.correction,
            remote=remote,
            track=lambda s: feedback.track(s, "streams"),
        )
    skipped = analysis.skipped
    if skipped:
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        log.warning("%d stream(s) skipped: %s%s", len(skipped), "; ".join(skipped[:3]), more)
    notes = [f"transition {tr.line()}" for tr in transitions]
    feedback.close()
    if args.json:
        print(json.dumps(to_json(analysis.results), allow_nan=False), flush=True)
        for line in notes:
            print(line, file=sys.stderr)
    else:
        print(_table(analysis.results), flush=True)
        for line in notes:
            print(line, flush=True)
    if report_dir is not None:
        with Feedback(args.quiet) as fb:
            fb.step(f"writing the report into {report_dir}")
            path = _write_report(args, report_dir, analysis, evs, clock, notes, rows)
        print(f"report: {path}", file=sys.stderr)
    return EXIT_OK


def _write_report(
    args: argparse.Namespace,
    report_dir: Path,
    analysis: Analysis,
    evs: list[Any],
    clock: str,
    notes: list[str],
    rows: list[dict[str, Any]] | None = None,
) -> Path:
    """The HTML report; a write failure is a :class:`RuntimeFailure` (the result is already printed)."""
    try:
        return write_analysis_report(
            analysis,
            report_dir,
            by=args.by,
            clock=clock,
            evs=evs,
            recordings=args.recording,
            title=f"asicrc analyze {' '.join(args.recording) or args.timestamps}",
            notes=[*notes, f"clock: {clock}; correction: {args.correction}; alpha: {args.alpha}"],
            rows=rows,
        )
    except OSError as exc:
        raise RuntimeFailure(f"--report {args.report}: {exc} (the result above is complete)") from exc


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand."""
    p = subparsers.add_parser(
        "analyze",
        help="timing statistics, artefact detection and a Poisson verdict per stream",
        description="Test event timing against a homogeneous Poisson process; detect host artefacts.",
    )
    p.add_argument(
        "recording",
        nargs="*",
        metavar="RECORDING_DIR",
        help="recording directory, <state-dir>/recordings/<run-id>; several are analysed side by side",
    )
    p.add_argument("--timestamps", metavar="FILE", help="text file: one integer ns timestamp per line")
    p.add_argument("--by", choices=("board", "chip", "point"), default="board", help="stream grouping")
    p.add_argument("--json", action="store_true", help="print JSON (one object, a list for several streams)")
    p.add_argument("--report", metavar="DIR", help="write an HTML report with PNG plots into DIR")
    p.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="host",
        help="host: t_ns, the raw read time (default); wire: t_wire_ns, the serialization-corrected estimate "
        "(corrected: the same, its former name)",
    )
    p.add_argument(
        "--correction", choices=("holm", "bh", "none"), default="holm", help="multiple comparisons"
    )
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        default=None,
        help="read the recordings and compute their streams as Dask tasks on the workers: local[:N] or "
        "tcp://HOST:PORT (docs/cluster.md); the correction stays here",
    )
    p.add_argument(
        "--config", metavar="FILE", help="daemon config: its [cluster] when --cluster is not given"
    )
    p.add_argument(
        "--alpha", type=open_unit, default=0.05, help="family-wise (holm) or FDR (bh) level, in (0, 1)"
    )
    p.add_argument("--no-mc", action="store_true", help="skip Monte-Carlo p-values (fast)")
    p.add_argument(
        "--seed", type=nonneg_int, default=0, help="seed of the interval-shuffle surrogates (>= 0)"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display on stderr")
    p.set_defaults(func=run)
