"""``asicrc analyze --cluster``: recordings read on the Dask workers where they are stored (docs/cluster.md).

Each recording directory is one task on a worker (:func:`read_task`: the daemon's recording reader and
grouping, as in a serial run), which keeps its streams in the worker's memory; only their count travels
here, to give every stream the seed the serial loop gives it (``--seed`` + its index over all recordings).
Each stream's statistics are then one task (:func:`stream_task`), scheduled where its recording was read,
returning the statistics with their extras only. The verdicts and the multiple-testing correction are
computed by the caller, once, over all streams, exactly as in a single run. Workers must see the recording
at the path given here; a recording missing on a worker raises the serial run's :class:`AnalysisInputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.analysis.compute import Outcome, point_rows, stream_outcome
from daemon.analysis.read import read_recording
from daemon.analysis.streams import Stream, group_streams
from daemon.point_streams import Transition


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
            data.point_rows = point_rows(ev, clock)
        data.summaries = list(read_point_summaries(d))
    return data


def summary_task(data: RecordingData) -> tuple[RecordingData, int]:
    """``data`` without its events (what travels back here) and its number of streams."""
    return RecordingData([], data.transitions, data.point_rows, data.summaries), len(data.streams)


def stream_task(data: RecordingData, j: int, mc: bool, seed: int, want_gaps: bool) -> Outcome:
    """Statistics of stream ``j`` of a recording read on this worker (see :func:`stream_outcome`)."""
    return stream_outcome(data.streams[j], mc, seed, want_gaps)


def analyze_on_cluster(
    recordings: Sequence[str],
    *,
    address: str,
    timeout_s: float | None,
    by: str,
    clock: str,
    mc: bool,
    seed: int,
    report: bool,
    step: Callable[[str], None] = lambda _s: None,
) -> tuple[list[Outcome], list[Transition], list[dict[str, Any]] | None]:
    """Outcomes of every stream of ``recordings`` (read on the workers of ``address``) in the serial order
    (stream ``i`` with seed ``seed + i``), the transitions, and the report's point rows (None unless
    ``report``). Dask's and the workers' errors propagate (the caller turns them into one line)."""
    from reservoir.distributed import connect, gather

    with connect(address, timeout_s) as cluster:
        client = cluster.client
        multi = len(recordings) > 1
        step(f"reading {len(recordings)} recording(s) on the workers of {address}")
        held = [client.submit(read_task, d, by, clock, multi, report) for d in recordings]
        heads = [client.submit(summary_task, h) for h in held]
        try:
            # in order: the first bad recording's error is raised, as in a serial run
            metas = [gather(client, h) for h in heads]
            calls = [(r, j) for r, (_, n) in enumerate(metas) for j in range(n)]
            step(f"{len(calls)} stream(s) as tasks on {address}")
            futures = [
                client.submit(stream_task, held[r], j, mc, seed + i, report) for i, (r, j) in enumerate(calls)
            ]
            outcomes: list[Outcome] = list(gather(client, futures))
        finally:
            client.cancel([*held, *heads])
    transitions = [t for m, _ in metas for t in m.transitions]
    rows = None
    if report:
        rows = [*(r for m, _ in metas for r in m.point_rows), *(r for m, _ in metas for r in m.summaries)]
    return outcomes, transitions, rows
