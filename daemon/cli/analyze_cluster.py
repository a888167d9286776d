"""``asicrc analyze --cluster``: recordings read on the workers where they are stored (docs/cluster.md).

Each recording directory is one task on a worker (:func:`read_task`: the daemon's recording reader and
grouping, as in a serial run), which keeps its streams in the worker's memory; only their count travels
here, to give every stream the seed the serial loop gives it (``--seed`` + its index over all recordings).
Each stream's statistics are then one task (:func:`stream_task`), scheduled where its recording was read,
returning the statistics with their extras only. The verdicts and the multiple-testing correction are
computed by the caller, once, over all streams, exactly as in a single run. Workers must see the recording
at the path given here; a recording missing on a worker is the serial run's one-line error (exit 2).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daemon.cli.analyze_cmd import (
    Stream,
    _point_rows,
    group_streams,
    read_recording,
    stream_outcome,
)
from daemon.cli.errors import cluster_errors
from daemon.cli.progress import Feedback
from daemon.point_streams import Transition
from reservoir.stats import StreamStats, TooFewEvents

Outcome = tuple[str, StreamStats | TooFewEvents, np.ndarray | None]


@dataclass
class RecordingData:
    """One recording's streams (held on the worker that read it) and what the report needs of it."""

    streams: list[Stream]
    transitions: list[Transition] = field(default_factory=list)
    point_rows: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)


def read_task(directory: str, by: str, clock: str, multi: bool, report: bool) -> RecordingData:
    """Read and group one recording on a worker (named ``<run-id>/<stream>`` when ``multi``)."""
    d = Path(directory)
    transitions: list[Transition] = []
    ev = read_recording(d, clock)
    streams = group_streams(ev, by, clock, transitions)
    if multi:
        for st in streams:
            st.name = f"{d.name}/{st.name}"
            st.labels["recording"] = d.name
    data = RecordingData(streams, transitions)
    if report:
        from daemon.point_log import read_point_summaries

        if by != "point" and "voltage_v" in ev and "freq_mhz" in ev:
            data.point_rows = _point_rows(ev, clock)
        data.summaries = list(read_point_summaries(d))
    return data


def summary_task(data: RecordingData) -> tuple[RecordingData, int]:
    """``data`` without its events (what travels back here) and its number of streams."""
    return RecordingData([], data.transitions, data.point_rows, data.summaries), len(data.streams)


def stream_task(data: RecordingData, j: int, mc: bool, seed: int, want_gaps: bool) -> Outcome:
    """Statistics of stream ``j`` of a recording read on this worker (see :func:`stream_outcome`)."""
    return stream_outcome(data.streams[j], mc, seed, want_gaps)


def analyze_on_cluster(
    args: argparse.Namespace, streams: list[Stream], clock: str, feedback: Feedback
) -> tuple[list[Outcome], list[Transition], list[dict[str, Any]] | None]:
    """Outcomes of every stream in the serial order, the transitions, and the report's point rows (None
    without ``--report``). ``streams``: already read here (``--timestamps``), else the recordings of
    ``args.recording`` are read on the workers."""
    from reservoir.distributed import connect, gather

    report = bool(args.report)
    with cluster_errors(), connect(args.cluster, args.cluster_timeout_s) as cluster:
        client = cluster.client
        if streams:
            held = [client.scatter(RecordingData(streams))]
        else:
            multi = len(args.recording) > 1
            feedback.step(f"reading {len(args.recording)} recording(s) on the workers of {args.cluster}")
            held = [client.submit(read_task, d, args.by, clock, multi, report) for d in args.recording]
        heads = [client.submit(summary_task, h) for h in held]
        try:
            # in order: the first bad recording's error is raised, as in a serial run
            metas = [gather(client, h) for h in heads]
            calls = [(r, j) for r, (_, n) in enumerate(metas) for j in range(n)]
            feedback.step(f"{len(calls)} stream(s) as tasks on {args.cluster}")
            futures = [
                client.submit(stream_task, held[r], j, not args.no_mc, args.seed + i, report)
                for i, (r, j) in enumerate(calls)
            ]
            outcomes: list[Outcome] = list(gather(client, futures))
        finally:
            client.cancel([*held, *heads])
    transitions = [t for m, _ in metas for t in m.transitions]
    rows = None
    if report and not streams:
        rows = [*(r for m, _ in metas for r in m.point_rows), *(r for m, _ in metas for r in m.summaries)]
    return outcomes, transitions, rows
