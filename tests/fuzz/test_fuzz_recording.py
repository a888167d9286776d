"""Fuzz recordings: torn, truncated and bit-flipped segments, and damaged ``meta.json``.

Promises checked: recovery never raises on a damaged ``.part``; a segment cut anywhere keeps exactly the
batches wholly before the cut (the stated loss bound: the batch being written); readers either return rows
in the event schema or raise a clear error (``pyarrow.ArrowException`` / ``ValueError`` / ``OSError``).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.events import EVENT_SCHEMA, make_event_batch
from daemon.recorder import Recorder
from daemon.recording import read_table, recover_dir

#: Batches in the template segment and rows in each.
BATCHES = 6
ROWS = 7
CLEAR_ERRORS = (pa.ArrowException, ValueError, OSError)


def _batch(i: int) -> pa.RecordBatch:
    n = np.arange(ROWS, dtype=np.int64) + i * ROWS
    return make_event_batch(
        "sim0",
        t_host_ns=n * 1000,
        t_ns=n * 1000 - 5,
        chip=np.zeros(ROWS, np.int16),
        core=np.zeros(ROWS, np.int16),
        small_core=np.zeros(ROWS, np.int8),
        job_id=np.zeros(ROWS, np.uint8),
        nonce=n.astype(np.uint32),
        valid=True,
        voltage_v=1.2,
        freq_mhz=485.0,
        ticket_diff=256.0,
        read_id=n,
    )


@functools.cache
def _template() -> tuple[bytes, tuple[int, ...], bytes]:
    """(torn ``.part`` bytes, file size after each flushed batch, a finished segment's bytes)."""
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        rec = Recorder(run, boards=["sim0"])
        ends = []
        for i in range(BATCHES):
            rec.add(_batch(i))
            rec.flush(fsync=False)
            ends.append((run / "events-000000.arrows.part").stat().st_size)
        part = (run / "events-000000.arrows.part").read_bytes()
        rec.close()
        done = (run / "events-000000.arrows").read_bytes()
    return part, tuple(ends), done


def _run_dir(tmp: Path, name: str, data: bytes) -> Path:
    run = tmp / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    (run / name).write_bytes(data)
    return run


def _read_or_clear_error(run: Path) -> pa.Table | None:
    try:
        table = read_table(run)
    except CLEAR_ERRORS as exc:
        assert str(exc)
        return None
    assert table.schema.equals(EVENT_SCHEMA)
    table.validate(full=True)  # a returned table must be sound: raises ArrowInvalid otherwise
    return table


@settings(max_examples=150)
@given(cut=st.integers(0, 10_000))
def test_truncated_part_keeps_every_whole_batch(tmp_path_factory: pytest.TempPathFactory, cut: int) -> None:
    part, ends, _ = _template()
    cut %= len(part) + 1
    run = _run_dir(tmp_path_factory.mktemp("rec"), "events-000000.arrows.part", part[:cut])
    recovered = recover_dir(run)
    whole = sum(1 for e in ends if e <= cut)
    assert len(recovered) == 1 and recovered[0].rows == whole * ROWS
    assert not list(run.glob("*.part"))
    table = _read_or_clear_error(run)
    assert table is not None and table.num_rows == whole * ROWS
    if whole:
        assert table.column("nonce").to_pylist() == list(range(whole * ROWS))


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for pos, mask in flips:
        buf[pos % len(buf)] ^= mask
    return bytes(buf)


flips = st.lists(st.tuples(st.integers(0, 100_000), st.integers(1, 255)), min_size=1, max_size=4)


@settings(max_examples=150)
@given(flips=flips, cut=st.integers(0, 10_000))
def test_corrupted_part_recovers_or_is_dropped(
    tmp_path_factory: pytest.TempPathFactory, flips: list[tuple[int, int]], cut: int
) -> None:
    part, _, _ = _template()
    data = _flip(part, flips)[: cut % (len(part) + 1)]
    run = _run_dir(tmp_path_factory.mktemp("rec"), "events-000000.arrows.part", data)
    recovered = recover_dir(run)
    assert len(recovered) == 1 and recovered[0].rows <= BATCHES * ROWS
    table = _read_or_clear_error(run)
    if table is not None:
        assert table.num_rows <= BATCHES * ROWS


@settings(max_examples=150)
@given(flips=flips)
def test_corrupted_finished_segment_reads_or_errors(
    tmp_path_factory: pytest.TempPathFactory, flips: list[tuple[int, int]]
) -> None:
    _, _, done = _template()
    run = _run_dir(tmp_path_factory.mktemp("rec"), "events-000000.arrows", _flip(done, flips))
    table = _read_or_clear_error(run)
    if table is not None:
        assert table.num_rows <= BATCHES * ROWS


meta_docs = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"[]", b"null", b"1", b'"x"', b'{"recovered": 1}', b'{"recovered": {}}', b"{}"]),
)


@settings(max_examples=60)
@given(meta=meta_docs)
def test_damaged_meta_json_does_not_stop_recovery(
    tmp_path_factory: pytest.TempPathFactory, meta: bytes
) -> None:
    part = _template()[0]
    run = _run_dir(tmp_path_factory.mktemp("rec"), "events-000000.arrows.part", part)
    (run / "meta.json").write_bytes(meta)
    recovered = recover_dir(run)
    assert recovered[0].rows == BATCHES * ROWS
    assert isinstance(json.loads((run / "meta.json").read_text())["recovered"], list)
