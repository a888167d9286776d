"""Event format 2: read structure per event, unknown (null) columns when not given, and format 1 recordings
read as format 2 (the old corrected t_ns moves to t_wire_ns, t_ns becomes the raw read time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from daemon.analysis import read_recording
from daemon.event_format import FORMAT2_COLUMNS, LEGACY_NAMES, upgrade_events
from daemon.events import EVENT_SCHEMA, make_event_batch
from daemon.recording import read_table

LEGACY_SCHEMA = pa.schema([EVENT_SCHEMA.field(n) for n in LEGACY_NAMES])


def _batch(board: str, read_id: list[int], t_host: list[int], t_corr: list[int]) -> pa.RecordBatch:
    n = len(read_id)
    return make_event_batch(
        board,
        t_host_ns=np.array(t_host, np.int64),
        t_ns=np.array(t_corr, np.int64),
        chip=0,
        core=0,
        small_core=0,
        job_id=np.zeros(n, np.uint8),
        nonce=np.arange(n, dtype=np.uint32),
        valid=True,
        voltage_v=1.2,
        freq_mhz=485.0,
        ticket_diff=1.0,
        read_id=np.array(read_id, np.int64),
    )


def _legacy(b: pa.RecordBatch) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([b.column(n) for n in LEGACY_NAMES], schema=LEGACY_SCHEMA)


def _write_legacy_recording(run: Path, batches: list[pa.RecordBatch]) -> None:
    run.mkdir()
    with pa.OSFile(str(run / "events-000000.arrows"), "wb") as f, pa.ipc.new_stream(f, LEGACY_SCHEMA) as w:
        for b in batches:
            w.write_batch(_legacy(b))


def test_columns_not_given_are_null_meaning_unknown() -> None:
    b = _batch("b", [1, 1, 2], [10, 10, 20], [8, 10, 20])
    assert b.schema.equals(EVENT_SCHEMA)
    for name in FORMAT2_COLUMNS:
        assert b.column(name).null_count == 3


def test_format1_batch_reads_as_format2() -> None:
    b = _batch("b", [5, 5, 5, 6], [100, 100, 100, 200], [78, 89, 100, 200])
    up = upgrade_events(_legacy(b))
    assert up.schema.equals(EVENT_SCHEMA)
    assert up.column("t_ns").to_pylist() == [100, 100, 100, 200]  # the raw read time
    assert up.column("t_wire_ns").to_pylist() == [78, 89, 100, 200]  # the old corrected time, kept apart
    assert up.column("read_pos").to_pylist() == [0, 1, 2, 0]
    assert up.column("read_nonces").to_pylist() == [3, 3, 3, 1]
    assert upgrade_events(up) is up


def test_a_board_change_ends_a_read_even_with_the_same_id() -> None:
    a = _legacy(_batch("a", [7, 7], [1, 1], [1, 1]))
    z = _legacy(_batch("z", [7], [2], [2]))
    t = pa.Table.from_batches([a, z.set_column(2, LEGACY_SCHEMA.field(2), z.column(2))]).unify_dictionaries()
    up = upgrade_events(t.combine_chunks())
    assert up.column("read_nonces").to_pylist() == [2, 2, 1]


def test_other_column_sets_are_refused() -> None:
    b = _legacy(_batch("b", [1], [1], [1])).drop_columns(["nonce"])
    with pytest.raises(ValueError, match="missing"):
        upgrade_events(b)


def test_a_format1_recording_is_read_by_the_library_and_by_analyze(tmp_path: Path) -> None:
    run = tmp_path / "old"
    t_host = np.repeat(np.arange(40, dtype=np.int64) * 1_000_000, 2)
    corr = t_host - np.tile([110_000, 0], 40)
    _write_legacy_recording(run, [_batch("b", list(np.repeat(np.arange(40), 2)), list(t_host), list(corr))])
    table = read_table(run)
    assert table.schema.equals(EVENT_SCHEMA)
    assert table.column("t_ns").to_pylist() == t_host.tolist()
    assert table.column("t_wire_ns").to_pylist() == corr.tolist()
    ev = read_recording(run, "t_wire_ns")
    assert ev["t_wire_ns"].tolist() == sorted(corr.tolist())
    assert set(ev["read_nonces"].tolist()) == {2}
