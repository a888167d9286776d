"""Recorder: segments readable by pyarrow/pandas/polars, rotation, fsync policy, torn-segment recovery,
permissions, write errors counted without raising, and the asyncio consumer."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.events import EVENT_SCHEMA, Pipeline, make_event_batch, make_log_batch
from daemon.recorder import Recorder, RecorderPolicy
from daemon.recording import (
    DIR_MODE,
    FILE_MODE,
    read_stream_tolerant,
    read_table,
    recover_all,
    recover_dir,
    segments,
)
from daemon.state import RecorderStats


class FakeClock:
    """Monotonic seconds under test control."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def ev(board: str, n: int, start: int, point: int = -1) -> pa.RecordBatch:
    """``n`` events whose t_ns are the sequence numbers start..start+n-1 (so gaps are detectable)."""
    seq = np.arange(start, start + n, dtype=np.int64)
    return make_event_batch(
        board,
        t_host_ns=seq,
        t_ns=seq,
        chip=seq % 7,
        core=seq % 100,
        small_core=seq % 4,
        job_id=(seq % 16) * 8,
        nonce=(seq * 2654435761) % 2**32,
        valid=seq % 5 != 0,
        voltage_v=1.2,
        freq_mhz=485.0,
        ticket_diff=256.0,
        read_id=seq // 3,
        point=point,
    )


@pytest.fixture(autouse=True)
def _umask() -> Iterator[None]:
    old = os.umask(0)  # permissions must not depend on the caller's umask
    yield
    os.umask(old)


def write_run(run_dir: Path, clock: FakeClock, policy: RecorderPolicy, flushes: int = 4) -> Recorder:
    rec = Recorder(run_dir, policy=policy, boards=["a"], clock=clock, meta={"boards": [{"name": "a"}]})
    rec.open()
    seq = 0
    for i in range(flushes):
        for board in ("a", "b"):
            rec.add(ev(board, 50, seq, point=i))
            seq += 50
        rec.add(make_log_batch(i, "a", "plan", {"point": i}))
        clock.t += 1.0
        rec.flush()
    return rec


def test_roundtrip_with_pyarrow_pandas_and_polars(tmp_path: Path) -> None:
    run = tmp_path / "recordings" / "r1"
    rec = write_run(run, FakeClock(), RecorderPolicy())
    rec.close()
    assert sorted(p.name for p in run.iterdir()) == ["events-000000.arrows", "log-000000.arrows", "meta.json"]
    table = read_table(run)
    assert table.schema.equals(EVENT_SCHEMA)
    assert table.column("t_ns").to_pylist() == list(range(400))
    assert sorted(set(table.column("board").to_pylist())) == ["a", "b"]
    path = segments(run)[0]
    with pa.OSFile(str(path), "rb") as f:
        df = pa.ipc.open_stream(f).read_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 400
    assert df["nonce"].dtype == np.uint32 and df.groupby("board", observed=True).size().to_dict() == {
        "a": 200,
        "b": 200,
    }
    pdf = pl.read_ipc_stream(path)
    assert pdf.height == 400 and pdf["t_ns"].to_list() == list(range(400))
    assert pdf.filter(pl.col("board") == "b").height == 200
    logs = read_table(run, "log")
    assert [json.loads(p)["point"] for p in logs.column("payload").to_pylist()] == [0, 1, 2, 3]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["run_id"] == "r1" and meta["stop_unix_ns"] >= meta["start_unix_ns"] and "version" in meta
    assert rec.stats.rows == 400 and rec.stats.log_rows == 4 and rec.stats.healthy


def test_files_and_dirs_have_restrictive_modes(tmp_path: Path) -> None:
    run = tmp_path / "state" / "recordings" / "r1"
    write_run(run, FakeClock(), RecorderPolicy()).close()
    for d in (tmp_path / "state", run.parent, run):
        assert stat.S_IMODE(d.stat().st_mode) == DIR_MODE
    for f in run.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == FILE_MODE, f


def test_rotation_by_size_renames_atomically_and_loses_nothing(tmp_path: Path) -> None:
    run = tmp_path / "r"
    rec = write_run(run, FakeClock(), RecorderPolicy(segment_bytes=4096), flushes=6)
    done = segments(run)
    assert len(done) >= 5  # every flush writes > 4 KiB, so each one closes its segment
    assert [p.name for p in done] == [f"events-{i:06d}.arrows" for i in range(len(done))]
    assert not list(run.glob("events-*.part"))  # closed on rotation, the next one is opened lazily
    rec.close()
    assert read_table(run).column("t_ns").to_pylist() == list(range(600))
    for p in done:  # every finished segment is a complete stream on its own
        assert pl.read_ipc_stream(p).height > 0


def test_rotation_by_time_uses_the_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = Recorder(tmp_path / "r", policy=RecorderPolicy(segment_seconds=10.0), clock=clock)
    rec.open()
    for i in range(5):
        rec.add(ev("a", 10, i * 10))
        rec.flush()
        clock.t += 4.0  # opened at the first flush; >= 10 s old at the 4th: 4 batches
    rec.close()
    sizes = [pl.read_ipc_stream(p).height for p in segments(tmp_path / "r")]
    assert sizes == [40, 10]


def test_fsync_follows_the_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = Recorder(tmp_path / "r", policy=RecorderPolicy(fsync_interval_s=5.0), clock=clock)
    rec.open()
    for i in range(10):  # one flush per second of clock time: an fsync every 5 s
        clock.t += 1.0
        rec.add(ev("a", 5, i * 5))
        rec.flush()
    assert rec.fsyncs == 2
    every = Recorder(tmp_path / "s", policy=RecorderPolicy(fsync_interval_s=0.0), clock=clock)
    every.open()
    for i in range(3):
        every.add(ev("a", 5, i * 5))
        every.flush()
    assert every.fsyncs == 3


def test_new_board_mid_segment_starts_a_segment_with_one_dictionary(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "r", boards=["a"])
    rec.open()
    rec.add(ev("a", 5, 0))
    rec.flush()
    rec.add(ev("z", 5, 5))
    rec.flush()
    rec.close()
    segs = segments(tmp_path / "r")
    assert len(segs) == 2
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert [b["name"] for b in meta["boards"]] == ["a", "z"]
    assert read_table(tmp_path / "r").column("board").to_pylist() == ["a"] * 5 + ["z"] * 5


# ------------------------------------------------------------------------------------------ recovery


def torn_part(run: Path) -> tuple[Path, list[int]]:
    """A .part as a killed daemon leaves it in ``run``; returns its path and cumulative rows at batch ends."""
    rec = Recorder(run)
    rec.open()
    ends = []
    total = 0
    for i in range(5):
        rec.add(ev("a", 20 + i, total))
        total += 20 + i
        rec.flush()
        ends.append(total)
    # abandon without close, like SIGKILL: the data reached the kernel, the end-of-stream marker did not
    part = run / "events-000000.arrows.part"
    assert part.exists()
    return part, ends


@settings(max_examples=40)  # each example writes and fsyncs a segment
@given(cut=st.floats(0.0, 1.0))
def test_recovery_keeps_every_whole_batch_before_the_tear(
    tmp_path_factory: pytest.TempPathFactory, cut: float
) -> None:
    tmp = tmp_path_factory.mktemp("torn")
    part, ends = torn_part(tmp / "r")
    size = part.stat().st_size
    keep = int(size * cut)
    with open(part, "r+b") as f:
        f.truncate(keep)
    _, batches, good = read_stream_tolerant(part)
    rows = sum(b.num_rows for b in batches)
    assert rows in [0, *ends] and good <= keep
    found = recover_dir(part.parent)
    assert len(found) == 1 and found[0].rows == rows
    assert found[0].lost_bytes == (keep - good if rows else keep)  # an empty part is removed whole
    assert not part.exists()
    if rows:
        assert read_table(part.parent).column("t_ns").to_pylist() == list(range(rows))
    else:
        assert segments(part.parent) == []
    meta = json.loads((part.parent / "meta.json").read_text())
    assert meta["recovered"][-1]["rows"] == rows


def test_untouched_part_is_recovered_whole_and_reported_in_stats(tmp_path: Path) -> None:
    part, ends = torn_part(tmp_path / "r")
    first_start = json.loads((part.parent / "meta.json").read_text())["start_unix_ns"]
    stats = RecorderStats()
    rec = Recorder(part.parent, stats=stats)
    found = rec.open()  # a restart in the same directory recovers first, then continues numbering
    assert json.loads((part.parent / "meta.json").read_text())["start_unix_ns"] == first_start
    assert [r.rows for r in found] == [ends[-1]] and stats.recovered_segments == 1
    rec.add(ev("a", 3, ends[-1]))
    rec.close()
    assert [p.name for p in segments(part.parent)] == ["events-000000.arrows", "events-000001.arrows"]
    assert read_table(part.parent).column("t_ns").to_pylist() == list(range(ends[-1] + 3))


def test_recover_all_walks_every_run(tmp_path: Path) -> None:
    for name in ("run1", "run2"):
        p, _ = torn_part(tmp_path / name)
    assert p.exists()
    found = recover_all(tmp_path)
    assert len(found) == 2 and not list(tmp_path.rglob("*.part"))
    assert recover_all(tmp_path / "missing") == []


# ------------------------------------------------------------------------------------------ errors


def test_unwritable_directory_is_counted_not_raised_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    clock = FakeClock()
    stats = RecorderStats()
    rec = Recorder(
        blocker / "recordings" / "r", stats=stats, clock=clock, policy=RecorderPolicy(retry_interval_s=10)
    )
    assert rec.open() == []
    assert (
        not stats.healthy and stats.write_errors == 1 and "cannot write recording" in (stats.last_error or "")
    )
    for _ in range(3):  # no retry before the interval: rows dropped and counted, errors not re-logged
        rec.add(ev("a", 10, 0))
        rec.flush()
        clock.t += 1.0
    assert stats.error_dropped_rows == 30 and stats.write_errors == 1
    assert sum("cannot write recording" in r.message for r in caplog.records) == 1
    blocker.unlink()  # the operator fixes it; the next retry succeeds without a restart
    clock.t += 10.0
    rec.add(ev("a", 10, 100))
    rec.flush()
    rec.close()
    assert stats.healthy and stats.rows == 10
    assert read_table(blocker / "recordings" / "r").column("t_ns").to_pylist() == list(range(100, 110))


def test_directory_removed_while_writing_is_counted(tmp_path: Path) -> None:
    run = tmp_path / "r"
    clock = FakeClock()
    rec = Recorder(run, clock=clock, policy=RecorderPolicy(segment_bytes=4096))
    rec.open()
    rec.add(ev("a", 10, 0))
    rec.flush()
    shutil.rmtree(run)
    rec.add(ev("a", 200, 10))
    rec.flush()  # rotation cannot rename into a vanished directory
    assert rec.stats.write_errors == 1 and rec.stats.error_dropped_rows == 200 and not rec.stats.healthy
    clock.t += 60.0
    rec.add(ev("a", 5, 210))
    rec.close()  # retry re-creates the directory
    assert rec.stats.healthy and read_table(run).num_rows == 5


# ------------------------------------------------------------------------------------------ asyncio


async def test_run_consumes_until_close_and_records_every_row(tmp_path: Path) -> None:
    p = Pipeline()
    sub = p.subscribe("recorder", 1000)
    rec = Recorder(tmp_path / "r", policy=RecorderPolicy(flush_interval_s=3600))
    task = asyncio.create_task(rec.run(sub))
    for i in range(20):
        p.publish(ev("a", 25, i * 25))
        if i % 5 == 0:
            p.log("a", "state", {"i": i})
        await asyncio.sleep(0)
    p.close()
    await task
    assert read_table(tmp_path / "r").column("t_ns").to_pylist() == list(range(500))
    assert read_table(tmp_path / "r", "log").num_rows == 4 and not list((tmp_path / "r").glob("*.part"))


async def test_cancelling_run_flushes_and_closes(tmp_path: Path) -> None:
    p = Pipeline()
    sub = p.subscribe("recorder", 1000)
    rec = Recorder(tmp_path / "r", policy=RecorderPolicy(flush_interval_s=3600))
    task = asyncio.create_task(rec.run(sub))
    p.publish(ev("a", 7, 0))
    await asyncio.sleep(0)
    p.publish(ev("a", 3, 7))  # still queued when cancelled: drained and written
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert read_table(tmp_path / "r").num_rows == 10


def test_foreign_batch_is_rejected_and_counted(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "r")
    rec.open()
    rec.add(pa.record_batch({"x": [1, 2, 3]}))
    rec.add(ev("a", 4, 0))
    rec.close()
    assert rec.stats.rejected_rows == 3 and rec.stats.rows == 4 and rec.stats.healthy
    assert read_table(tmp_path / "r").num_rows == 4


def test_recovered_segment_reads_with_polars_and_pandas(tmp_path: Path) -> None:
    part, ends = torn_part(tmp_path / "r")
    with open(part, "r+b") as f:
        f.truncate(part.stat().st_size - 100)  # tear the last batch
    (found,) = recover_dir(part.parent)
    assert found.rows == ends[-2]
    path = part.parent / "events-000000.arrows"
    assert pl.read_ipc_stream(path)["t_ns"].to_list() == list(range(ends[-2]))
    with pa.OSFile(str(path), "rb") as f:
        assert len(pa.ipc.open_stream(f).read_pandas()) == ends[-2]


def test_policy_defaults_are_the_config_defaults() -> None:
    """One source for the flush/fsync/segment defaults: ``[recorder]`` in the config (fsync every 5 s)."""
    from daemon.config import RecorderConfig, default_config

    rc = RecorderConfig()
    assert RecorderPolicy() == RecorderPolicy.from_config(rc)
    assert RecorderPolicy().fsync_interval_s == 5.0
    shipped = default_config().recorder  # daemon/defaults.toml
    assert RecorderPolicy.from_config(shipped).fsync_interval_s == rc.fsync_interval_s
