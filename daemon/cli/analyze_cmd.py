"""``asicrc analyze``: timing statistics, artefact detection and a verdict per stream (docs/analyze.md).

    asicrc analyze RECORDING_DIR... [--by board|chip|point] [--clock host|wire] [--json] [--report DIR]
    asicrc analyze --timestamps FILE [--json] [--report DIR]

Reads the recording format of docs/recording-format.md (Arrow IPC stream segments ``events-*.arrows``; a torn
``.part`` keeps its whole record batches; older formats are read as the current one; a damaged finished
segment is an error naming it, which ``asicrc record recover DIR`` sets aside). ``--by point`` groups by the
plan's point (the ``point`` column): each point's events at its setpoint are one stream; ramp steps and events
outside any point are transitions, counted apart and not tested (:mod:`daemon.point_streams`). Several
recordings are analysed side by side, their streams named ``<run-id>/<stream>``. The statistics live in
:mod:`reservoir.stats`. Bad input exits 2, a report that cannot be written after the result was printed
exits 1 (daemon/cli/errors.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daemon.cli.cluster_opts import resolve_cluster
from daemon.cli.errors import (
    RuntimeFailure,
    UsageError,
    check_output_dir,
    nonneg_int,
    open_unit,
)
from daemon.cli.progress import Feedback
from daemon.event_format import FORMAT2_COLUMNS, LEGACY_NAMES, upgrade_events
from daemon.point_streams import Transition, point_runs
from reservoir.stats import (
    MIN_EVENTS,
    StreamResult,
    StreamStats,
    TooFewEvents,
    compute_stream,
    decide,
    summary,
)

log = logging.getLogger(__name__)

#: BM1366 small cores per chip (docs/protocol.md): expected nonces/s per chip = f * 1e6 * 894 / (ticket_diff
#: * 2^32).
SMALL_CORES = 894
COLUMNS = (
    "t_ns",
    "t_host_ns",
    "t_wire_ns",
    "board",
    "chip",
    "valid",
    "voltage_v",
    "freq_mhz",
    "ticket_diff",
    "read_id",
    "read_pos",
    "read_nonces",
    "point",
    "power_w",
)
#: ``--clock`` choice -> event column ("corrected": the name of ``wire`` before recording format 2).
CLOCKS = {"host": "t_ns", "wire": "t_wire_ns", "corrected": "t_wire_ns"}
#: Per-event columns a stream keeps (for the verdict's evidence and the per-stream extras).
STREAM_COLUMNS = ("valid", "freq_mhz", "ticket_diff", "read_id", "read_pos", "read_nonces", "power_w", "chip")


class AnalyzeError(UsageError):
    """A user-facing input error (bad file, missing directory, damaged segment, too few events): exit 2."""


@dataclass
class Stream:
    """Events of one stream: time segments (int64 ns, contiguous runs) and per-event columns."""

    name: str
    segments: list[np.ndarray] = field(default_factory=list)
    cols: dict[str, list[np.ndarray]] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)

    def col(self, key: str) -> np.ndarray | None:
        parts = self.cols.get(key)
        return np.concatenate(parts) if parts else None


def read_segment(path: Path) -> pa.Table | None:
    """Every whole, valid record batch of one Arrow IPC stream file; None if it holds none.

    A torn ``.part`` (the daemon was killed while writing it) keeps its whole batches. Damage in a finished
    segment raises :class:`AnalyzeError` naming it: ``asicrc record recover`` sets such a segment aside.
    """
    torn_ok = path.name.endswith(".part")
    batches: list[pa.RecordBatch] = []

    def damaged(exc: Exception) -> AnalyzeError:
        return AnalyzeError(
            f"{path}: damaged segment ({exc}); run `asicrc record recover {path.parent}` to set it aside"
        )

    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)) if path.stat().st_size else pa.BufferReader(b""))
    except (pa.ArrowException, OSError) as exc:
        if not torn_ok:
            raise damaged(exc) from None
        log.warning("%s: not readable as an Arrow stream (%s); skipped", path, exc)
        return None
    while True:
        try:
            batch = reader.read_next_batch()
            batch.validate(full=True)
        except StopIteration:
            break
        except (pa.ArrowException, OSError) as exc:
            if not torn_ok:
                raise damaged(exc) from None
            log.warning("%s: torn tail after %d whole batches (%s)", path, len(batches), exc)
            break
        batches.append(batch)
    if not batches:
        return None
    return pa.Table.from_batches(batches)


def read_recording(directory: Path, clock: str = "t_ns") -> dict[str, np.ndarray]:
    """The event columns of a recording directory as numpy arrays (board as strings), sorted by time."""
    if not directory.is_dir():
        raise AnalyzeError(f"{directory}: no such recording directory")
    whole = sorted(directory.glob("events-*.arrows"))
    names = {f.name for f in whole}
    # a .part next to its finished segment (a crash during recovery's rename) would count rows twice
    files = whole + sorted(p for p in directory.glob("events-*.arrows.part") if p.name[:-5] not in names)
    if not files:
        raise AnalyzeError(f"{directory}: no events-*.arrows segments (is this a recording directory?)")
    cols: dict[str, list[np.ndarray]] = {}
    for f in files:
        t = read_segment(f)
        if t is None or t.num_rows == 0:
            continue
        if tuple(t.column_names) == LEGACY_NAMES:
            t = upgrade_events(t)
        if clock not in t.column_names:
            raise AnalyzeError(f"{f}: no {clock!r} column (columns: {', '.join(t.column_names)})")
        for name in COLUMNS:
            if name not in t.column_names:
                continue
            c = t.column(name)
            if name in FORMAT2_COLUMNS and c.null_count:
                continue  # unknown in this segment: the column is dropped for the whole recording
            if name == "board":
                cols.setdefault(name, []).append(_strings(c))
            else:
                cols.setdefault(name, []).append(c.to_numpy())
    if clock not in cols:
        if clock == "t_wire_ns" and files:
            raise AnalyzeError(f"{directory}: no serialization-corrected t_wire_ns (use --clock host)")
        raise AnalyzeError(f"{directory}: the segments hold no events")
    n = sum(len(a) for a in cols[clock])
    out = {k: np.concatenate(v) for k, v in cols.items() if sum(len(a) for a in v) == n}
    order = np.argsort(out[clock], kind="stable")
    return {k: v[order] for k, v in out.items()}


def _strings(col: pa.ChunkedArray) -> np.ndarray:
    """A (dictionary) string column as a numpy object array, decoding each distinct name once."""
    enc = pc.dictionary_encode(pc.cast(col, pa.string())).combine_chunks()
    names = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    out: np.ndarray = names[enc.indices.to_numpy(zero_copy_only=False)]
    return out


def group_streams(
    ev: dict[str, np.ndarray], by: str, clock: str = "t_ns", transitions: list[Transition] | None = None
) -> list[Stream]:
    """Split events into streams by board, (board, chip) or plan point (:func:`point_runs`); a point stream's
    time segments are its contiguous runs within its board's event order (intervals across runs are not used).
    With ``by="point"``, the events of no stream are appended to ``transitions`` (one entry per board)."""
    n = len(ev[clock])
    board = ev.get("board", np.full(n, "-", dtype=object))
    streams: dict[tuple[Any, ...], Stream] = {}
    for b in sorted(set(board.tolist())):
        idx = np.flatnonzero(board == b)
        if by == "board":
            runs: list[tuple[tuple[Any, ...], np.ndarray]] = [((b,), np.arange(len(idx)))]
        elif by == "chip":
            if "chip" not in ev:
                raise AnalyzeError("--by chip: the recording has no 'chip' column")
            chips = ev["chip"][idx]
            runs = [((b, int(c)), np.flatnonzero(chips == c)) for c in np.unique(chips)]
        else:
            if "voltage_v" not in ev or "freq_mhz" not in ev:
                raise AnalyzeError("--by point: the recording has no voltage_v/freq_mhz columns")
            keys = ("voltage_v", "freq_mhz", "ticket_diff", "point")
            sub: dict[str, np.ndarray] = {k: ev[k][idx] for k in keys if k in ev}
            found, trans = point_runs(sub, ev[clock][idx], MIN_EVENTS)
            runs = [((b, *key), sel) for key, sel in found]
            if trans is not None and transitions is not None:
                transitions.append(dataclasses.replace(trans, board=str(b)))
        for key, pos in runs:
            st = streams.setdefault(key, Stream(name=_name(by, key), labels=_labels(by, key)))
            # a point's events are cut where another point or a transition came between them; a chip's
            # events interleave with the other chips' and stay one segment
            parts = np.split(pos, np.flatnonzero(np.diff(pos) != 1) + 1) if by == "point" else [pos]
            for part in parts:
                if not len(part):
                    continue
                sel = idx[part]
                st.segments.append(ev[clock][sel])
                for c in (*STREAM_COLUMNS, "voltage_v"):
                    if c in ev:
                        st.cols.setdefault(c, []).append(ev[c][sel])
    return list(streams.values())


def _name(by: str, key: tuple[Any, ...]) -> str:
    if by == "board":
        return str(key[0])
    if by == "chip":
        return f"{key[0]}/chip{key[1]}"
    point = f"/p{key[1]}" if key[1] >= 0 else ""
    return f"{key[0]}{point}@{key[2]:g}V/{key[3]:g}MHz"


def _labels(by: str, key: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"board": key[0]}
    if by == "chip":
        out["chip"] = key[1]
    if by == "point":
        if key[1] >= 0:
            out["point"] = key[1]
        out["voltage_v"], out["freq_mhz"] = key[2], key[3]
    return out


def stream_extras(st: Stream, rate_hz: float) -> dict[str, Any]:
    """Invalid fraction, nonce rate vs expected and J/TH (when power_w is recorded) for one stream."""
    out: dict[str, Any] = dict(st.labels)
    valid = st.col("valid")
    if valid is not None:
        out["invalid_fraction"] = float(1.0 - np.mean(valid.astype(bool)))
    f, td, chip = st.col("freq_mhz"), st.col("ticket_diff"), st.col("chip")
    if f is not None and td is not None and len(f):
        chips = len(np.unique(chip)) if chip is not None else 1
        f_med, td_med = float(np.median(f)), float(np.median(td))
        if td_med > 0:
            expected = chips * f_med * 1e6 * SMALL_CORES / (td_med * 2.0**32)
            out["expected_rate_hz"] = expected
            out["rate_vs_expected"] = rate_hz / expected if expected > 0 else None
            power = st.col("power_w")
            if power is not None and len(power):
                th_s = rate_hz * td_med * 2.0**32 / 1e12
                out["power_w"] = float(np.nanmean(power))
                out["j_per_th"] = out["power_w"] / th_s if th_s > 0 else None
    return out


def read_timestamps(path: Path) -> np.ndarray:
    """One integer ns timestamp per line (blank lines and '#' comments skipped); sorted if needed."""
    if not path.exists() or path.is_dir():
        raise AnalyzeError(f"{path}: no such file")
    vals: list[int] = []
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            try:
                v = int(s)
            except ValueError:
                raise AnalyzeError(f"{path}:{lineno}: not an integer timestamp in ns: {s[:40]!r}") from None
            if not lo <= v <= hi:
                raise AnalyzeError(f"{path}:{lineno}: timestamp {s[:40]} ns is outside the int64 range")
            vals.append(v)
    t = np.asarray(vals, dtype=np.int64)
    if len(t) > 1 and np.any(np.diff(t) < 0):
        log.warning("%s: timestamps are not in order; sorted", path)
        t = np.sort(t)
    if len(t) > 1 and t[0] == t[-1]:
        raise AnalyzeError(f"{path}: all {len(t)} timestamps are equal ({t[0]} ns): no intervals to analyse")
    return t


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
    """Handler of ``asicrc analyze``; errors are :class:`AnalyzeError` (exit 2, one line on stderr)."""
    with Feedback(args.quiet) as feedback:  # closed before the result is printed (stdout may share the tty)
        return _run(args, feedback)


def _read_all(
    dirs: list[Path], by: str, clock: str, feedback: Feedback, transitions: list[Transition]
) -> tuple[list[Stream], list[Any]]:
    """Streams of every recording (named ``<run-id>/<stream>`` when there are several) and their events;
    with ``by="point"`` the untested transitions are appended to ``transitions``."""
    streams: list[Stream] = []
    evs: list[dict[str, np.ndarray]] = []
    for d in feedback.track(dirs, "reading recordings") if len(dirs) > 1 else dirs:
        feedback.step(f"reading {d}")
        ev = read_recording(d, clock)
        found = group_streams(ev, by, clock, transitions)
        if len(dirs) > 1:
            for st in found:
                st.name = f"{d.name}/{st.name}"
                st.labels["recording"] = d.name
        streams.extend(found)
        evs.append(ev)
    return streams, evs


def stream_outcome(
    st: Stream, mc: bool, seed: int, want_gaps: bool = True
) -> tuple[str, StreamStats | TooFewEvents, np.ndarray | None]:
    """One stream's statistics with its extras (or its :class:`TooFewEvents`) and its intervals in s."""
    try:
        s = compute_stream(st.segments, name=st.name, read_ids=st.col("read_id"), mc=mc, seed=seed)
    except TooFewEvents as exc:
        return st.name, exc, None
    s.extra.update(stream_extras(st, s.rate_hz))
    gaps = np.concatenate([np.diff(g) for g in st.segments if len(g) > 1]) / 1e9 if want_gaps else None
    return st.name, s, gaps


def _run(args: argparse.Namespace, feedback: Feedback) -> int:
    clock = CLOCKS[args.clock]
    transitions: list[Transition] = []
    streams: list[Stream]
    evs: list[dict[str, np.ndarray]] = []
    report_dir = check_output_dir(args.report, "--report") if args.report else None  # before computing
    resolve_cluster(args)  # --cluster, else [cluster] of --config
    if args.timestamps:
        if args.recording:
            raise AnalyzeError("give either RECORDING_DIR or --timestamps FILE, not both")
        path = Path(args.timestamps)
        streams = [Stream(name=path.name, segments=[read_timestamps(path)])]
    elif args.recording and args.cluster:  # read on the workers (daemon/cli/analyze_cluster.py)
        streams = []
    elif args.recording:
        streams, evs = _read_all([Path(r) for r in args.recording], args.by, clock, feedback, transitions)
    else:
        raise AnalyzeError("give RECORDING_DIR or --timestamps FILE")
    stats: list[StreamStats] = []
    gaps: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    rows: list[dict[str, Any]] | None = None  # the report's point rows, when computed on the workers
    if args.cluster:
        from daemon.cli.analyze_cluster import analyze_on_cluster

        outcomes, transitions, rows = analyze_on_cluster(args, streams, clock, feedback)
    else:
        feedback.step(f"{len(streams)} stream(s)")
        outcomes = [
            stream_outcome(st, not args.no_mc, args.seed + i)
            for i, st in enumerate(feedback.track(streams, "streams"))
        ]
    for name, s, g in outcomes:
        if isinstance(s, TooFewEvents):
            if len(outcomes) == 1:
                raise AnalyzeError(str(s)) from None
            skipped.append(str(s))
            continue
        stats.append(s)
        if g is not None:
            gaps[name] = g
    if skipped:
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        log.warning("%d stream(s) skipped: %s%s", len(skipped), "; ".join(skipped[:3]), more)
    if not stats:
        raise AnalyzeError(f"no stream has at least {MIN_EVENTS} events ({len(skipped)} streams skipped)")
    notes = [f"transition {t.line()}" for t in transitions]
    results = decide(stats, alpha=args.alpha, correction=args.correction)
    feedback.close()
    if args.json:
        objs = [r.to_json() for r in results]
        doc = _finite(objs[0] if len(objs) == 1 else objs)
        print(json.dumps(doc, default=_json_default, allow_nan=False), flush=True)
        for line in notes:
            print(line, file=sys.stderr)
    else:
        print(_table(results), flush=True)
        for line in notes:
            print(line, flush=True)
    if report_dir is not None:
        with Feedback(args.quiet) as fb:
            fb.step(f"writing the report into {report_dir}")
            path = _write_report(args, report_dir, results, gaps, evs, clock, skipped, notes, rows)
        print(f"report: {path}", file=sys.stderr)
    return 0


def _write_report(
    args: argparse.Namespace,
    report_dir: Path,
    results: list[StreamResult],
    gaps: dict[str, np.ndarray],
    evs: list[dict[str, np.ndarray]],
    clock: str,
    skipped: list[str],
    notes: list[str],
    rows: list[dict[str, Any]] | None = None,
) -> Path:
    """The HTML report; a write failure is a :class:`RuntimeFailure` (the result is already printed)."""
    from reservoir.stats.report import write_report

    if args.by == "point":
        points = [_point_row(r.stats) for r in results]
    elif rows is None:
        mapped = [ev for ev in evs if "voltage_v" in ev and "freq_mhz" in ev]
        points = [row for ev in mapped for row in _point_rows(ev, clock)]
    else:
        points = []
    if rows is not None:  # --cluster: the workers' point rows, then their point logs' summaries
        points = [*points, *rows]
    elif args.recording:  # power, J/TH and temperature per sweep point: the log's point summaries
        from daemon.point_log import read_point_summaries

        points = [*points, *(row for d in args.recording for row in read_point_summaries(Path(d)))]
    try:
        return write_report(
            results,
            gaps,
            report_dir,
            points=points,
            title=f"asicrc analyze {' '.join(args.recording) or args.timestamps}",
            notes=[*notes, f"clock: {clock}; correction: {args.correction}; alpha: {args.alpha}"],
            warnings=skipped,
        )
    except OSError as exc:
        raise RuntimeFailure(f"--report {args.report}: {exc} (the result above is complete)") from exc


def _point_row(s: StreamStats) -> dict[str, Any]:
    """One heatmap row: the stream's labels and extras plus CV and the Fano factor at ~10 mean intervals."""
    return {**s.extra, "cv": s.cv, "fano": _fano_at(s, 10.0)}


def _point_rows(ev: dict[str, np.ndarray], clock: str) -> list[dict[str, Any]]:
    """Heatmap rows per (board, voltage, frequency) for a report grouped otherwise (fast path, no MC)."""
    rows = []
    for st in group_streams(ev, "point", clock):
        try:
            s = compute_stream(st.segments, name=st.name, mc=False, surrogates=0)
        except TooFewEvents:
            continue
        s.extra.update(stream_extras(st, s.rate_hz))
        rows.append(_point_row(s))
    return rows


def _fano_at(s: StreamStats, multiple: float) -> float | None:
    """Fano factor at the window closest (in log) to ``multiple`` mean intervals."""
    if not s.fano:
        return None
    target = multiple * s.mean_interval_s
    w = min(s.fano, key=lambda x: abs(np.log(x / target)))
    return s.fano[w]


def _finite(o: Any) -> Any:
    """NaN and infinities -> None (strict JSON), recursively."""
    if isinstance(o, float | np.floating):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def _json_default(o: object) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


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
