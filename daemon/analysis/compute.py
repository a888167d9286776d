"""Each stream's statistics (here or as Dask tasks), the multiple-comparison verdict, JSON and the report.

The statistics are :func:`reservoir.timing.compute_stream` with seed ``seed + i`` for stream ``i``, whether
computed here or on a cluster (docs/cluster.md); :func:`reservoir.timing.decide` applies the correction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from daemon.analysis.read import AnalysisInputError
from daemon.analysis.streams import Stream, group_streams, stream_extras
from reservoir.timing import MIN_EVENTS, StreamResult, StreamStats, TooFewEvents, compute_stream, decide

#: Multiple-comparison corrections of :func:`reservoir.timing.decide`.
Correction = Literal["holm", "bh", "none"]


@dataclass
class Analysis:
    """The verdicts, each tested stream's intervals (s, for the report's plots) and the streams skipped."""

    results: list[StreamResult]
    gaps: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def stream_calls(
    streams: Sequence[Stream], mc: bool, seed: int
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """``(args, kwargs)`` of :func:`compute_stream` per stream: the same for a local run and a cluster."""
    return [
        ((st.segments,), {"name": st.name, "read_ids": st.col("read_id"), "mc": mc, "seed": seed + i})
        for i, st in enumerate(streams)
    ]


#: One stream's statistics (or its :class:`TooFewEvents`) and its intervals in s (None: not wanted).
Outcome = tuple[str, StreamStats | TooFewEvents, np.ndarray | None]


def stream_outcome(st: Stream, mc: bool, seed: int, want_gaps: bool = True) -> Outcome:
    """One stream's statistics with its extras (or its :class:`TooFewEvents`) and its intervals in s."""
    try:
        s = compute_stream(st.segments, name=st.name, read_ids=st.col("read_id"), mc=mc, seed=seed)
    except TooFewEvents as exc:
        return st.name, exc, None
    return _completed(st, s, want_gaps)


def _completed(st: Stream, s: StreamStats, want_gaps: bool = True) -> Outcome:
    s.extra.update(stream_extras(st, s.rate_hz))
    gaps = np.concatenate([np.diff(g) for g in st.segments if len(g) > 1]) / 1e9 if want_gaps else None
    return st.name, s, gaps


def analyse_streams(
    streams: Sequence[Stream],
    *,
    mc: bool = True,
    seed: int = 0,
    alpha: float = 0.05,
    correction: Correction = "holm",
    remote: Sequence[StreamStats | TooFewEvents] | None = None,
    track: Callable[[Sequence[Stream]], Iterable[Stream]] = lambda s: s,
) -> Analysis:
    """Statistics and verdict of every stream with enough events (stream ``i`` with seed ``seed + i``);
    ``remote``: results computed elsewhere from :func:`stream_calls`, in order (:func:`decide_outcomes`)."""
    if remote is None:
        outcomes = [stream_outcome(st, mc, seed + i) for i, st in enumerate(track(streams))]
    else:
        outcomes = [
            (st.name, r, None) if isinstance(r, TooFewEvents) else _completed(st, r)
            for st, r in zip(streams, remote)
        ]
    return decide_outcomes(outcomes, alpha=alpha, correction=correction)


def decide_outcomes(
    outcomes: Sequence[Outcome], *, alpha: float = 0.05, correction: Correction = "holm"
) -> Analysis:
    """The verdicts over all streams at once (one multiple-comparison family). A single stream with too
    few events, or none with enough, is an :class:`AnalysisInputError`; otherwise such streams are listed in
    ``skipped``."""
    stats: list[StreamStats] = []
    gaps: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    for name, s, g in outcomes:
        if isinstance(s, TooFewEvents):
            if len(outcomes) == 1:
                raise AnalysisInputError(str(s)) from None
            skipped.append(str(s))
            continue
        stats.append(s)
        if g is not None:
            gaps[name] = g
    if not stats:
        msg = f"no stream has at least {MIN_EVENTS} events ({len(skipped)} streams skipped)"
        raise AnalysisInputError(msg)
    return Analysis(decide(stats, alpha=alpha, correction=correction), gaps, skipped)


def to_json(results: Sequence[StreamResult]) -> Any:
    """One JSON-ready object (a list for several streams); NaN and infinities become None."""
    objs = [r.to_json() for r in results]
    return _finite(_plain(objs[0] if len(objs) == 1 else objs))


def write_analysis_report(
    analysis: Analysis,
    report_dir: Path,
    *,
    by: str,
    clock: str,
    evs: Sequence[dict[str, np.ndarray]],
    recordings: Sequence[str],
    title: str,
    notes: Sequence[str],
    rows: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """The HTML report with its heatmap rows (per point; per (board, V, f) for other groupings) and the
    point log's summaries of ``recordings`` (``rows``: both computed on cluster workers instead); an
    :class:`OSError` when it cannot be written."""
    from daemon.point_log import read_point_summaries
    from reservoir.timing.report import write_report

    points: list[dict[str, Any]] = []
    if by == "point":
        points = [_point_row(r.stats) for r in analysis.results]
    elif rows is None:
        mapped = [ev for ev in evs if "voltage_v" in ev and "freq_mhz" in ev]
        points = [row for ev in mapped for row in point_rows(ev, clock)]
    if rows is not None:  # computed on the workers (--cluster): point rows, then the point logs' summaries
        points += rows
    else:
        points += [
            row for d in recordings for row in read_point_summaries(Path(d))
        ]  # power, J/TH, temperature
    return write_report(
        analysis.results,
        analysis.gaps,
        report_dir,
        points=points,
        title=title,
        notes=list(notes),
        warnings=analysis.skipped,
    )


def _point_row(s: StreamStats) -> dict[str, Any]:
    """One heatmap row: the stream's labels and extras plus CV and the Fano factor at ~10 mean intervals."""
    return {**s.extra, "cv": s.cv, "fano": _fano_at(s, 10.0)}


def point_rows(ev: dict[str, np.ndarray], clock: str) -> list[dict[str, Any]]:
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


def _plain(o: Any) -> Any:
    """numpy scalars and arrays -> Python numbers and lists, recursively (``json.dumps`` takes the rest)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_plain(v) for v in o]
    return o
