"""``daemon.analysis`` without the command line: the segment reader's damage rule, results computed elsewhere
equal local ones, strict JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from daemon.analysis import (
    AnalysisInputError,
    Stream,
    analyse_streams,
    read_segment,
    stream_calls,
    to_json,
)
from reservoir.timing import TooFewEvents, compute_stream, synth

SCHEMA = pa.schema([("t_ns", pa.int64()), ("valid", pa.bool_())])


def _segment(path: Path, batches: int = 3, rows: int = 100, cut: int = 0) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, SCHEMA) as w:
        for b in range(batches):
            t = np.arange(b * rows, (b + 1) * rows, dtype=np.int64)
            w.write_batch(pa.record_batch([pa.array(t), pa.array(np.ones(rows, bool))], schema=SCHEMA))
    if cut:
        path.write_bytes(path.read_bytes()[:-cut])


def test_a_torn_part_keeps_its_whole_batches_and_a_torn_finished_segment_is_named(tmp_path: Path) -> None:
    part = tmp_path / "events-000001.arrows.part"
    _segment(part, cut=100)  # the end-of-stream marker and the tail of the last batch
    table = read_segment(part)
    assert table is not None and table.num_rows == 200
    done = tmp_path / "events-000000.arrows"
    _segment(done, cut=100)
    with pytest.raises(AnalysisInputError, match=r"events-000000\.arrows: damaged segment .*record recover"):
        read_segment(done)
    whole = tmp_path / "events-000002.arrows"
    _segment(whole)
    assert read_segment(whole).num_rows == 300  # type: ignore[union-attr]


def _streams() -> list[Stream]:
    rng = np.random.default_rng(3)
    return [
        Stream("a", segments=[synth.poisson(800, 5.0, rng)]),
        Stream("b", segments=[synth.grid(synth.poisson(800, 5.0, rng), 0.016, rng)]),
        Stream("short", segments=[synth.poisson(5, 5.0, rng)]),
    ]


def test_results_computed_elsewhere_equal_the_local_ones() -> None:
    streams = _streams()
    local = analyse_streams(streams, mc=False, seed=7)
    remote: list[object] = []
    for args, kwargs in stream_calls(streams, mc=False, seed=7):
        try:
            remote.append(compute_stream(*args, **kwargs))
        except TooFewEvents as exc:
            remote.append(exc)
    there = analyse_streams(streams, mc=False, seed=7, remote=remote)  # type: ignore[arg-type]
    assert to_json(there.results) == to_json(local.results)
    assert [r.stats.name for r in local.results] == ["a", "b"] and len(local.skipped) == 1
    assert local.results[1].verdict == "artifact"
    assert json.loads(json.dumps(to_json(local.results), allow_nan=False))  # strict JSON


def test_a_single_short_stream_is_an_input_error() -> None:
    with pytest.raises(AnalysisInputError, match="events"):
        analyse_streams([_streams()[2]], mc=False)
