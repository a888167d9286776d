"""Recordings and timestamp files -> streams -> timing statistics and a verdict per stream (docs/analyze.md).

The library behind ``asicrc analyze``: :mod:`~daemon.analysis.read` turns a recording directory into event
columns (through the one recording reader, :mod:`daemon.recording`), :mod:`~daemon.analysis.streams` groups
them by board, chip or plan point, and :mod:`~daemon.analysis.compute` runs :mod:`reservoir.timing` on each
stream and writes the HTML report. Bad input raises :class:`AnalysisInputError` (a ``ValueError``) with a
one-line message naming the input.
"""

from __future__ import annotations

from daemon.analysis.compute import (
    Analysis,
    Outcome,
    analyse_streams,
    decide_outcomes,
    stream_calls,
    stream_outcome,
    to_json,
    write_analysis_report,
)
from daemon.analysis.read import (
    CLOCKS,
    COLUMNS,
    AnalysisInputError,
    read_recording,
    read_segment,
    read_timestamps,
)
from daemon.analysis.streams import STREAM_COLUMNS, Stream, group_streams, read_streams, stream_extras

__all__ = [
    "CLOCKS",
    "COLUMNS",
    "STREAM_COLUMNS",
    "Analysis",
    "AnalysisInputError",
    "Outcome",
    "Stream",
    "analyse_streams",
    "decide_outcomes",
    "group_streams",
    "read_recording",
    "read_segment",
    "read_streams",
    "read_timestamps",
    "stream_calls",
    "stream_extras",
    "stream_outcome",
    "to_json",
    "write_analysis_report",
]
