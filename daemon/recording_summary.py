"""What ``asicrc record info`` and ``record convert`` compute: a recording's summary, and its rows as
Parquet or CSV (docs/recording-format.md). Both read finished segments one batch at a time through
:func:`daemon.recording.iter_batches` and never modify the directory; a directory that is not a readable
recording is a :class:`RecordingError` saying what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from daemon.events import EVENT_SCHEMA, LOG_SCHEMA
from daemon.recording import iter_batches, read_meta, read_stream_tolerant, segments


class RecordingError(ValueError):
    """The directory is not a readable recording; the message says what was expected."""


def _damaged(run_dir: Path, exc: ValueError) -> RecordingError:
    return RecordingError(f"{exc}; `asicrc record recover {run_dir}` sets damaged segments aside")


def check_recording_dir(run_dir: Path) -> None:
    """``run_dir`` holds a recording (``meta.json`` or segments), else a :class:`RecordingError` says why."""
    if not run_dir.is_dir():
        raise RecordingError(f"{run_dir}: no such directory")
    if not (run_dir / "meta.json").exists() and not any(run_dir.glob("*.arrows*")):
        runs = sorted(p.name for p in run_dir.iterdir() if (p / "meta.json").exists())
        hint = f"; it holds recordings: {', '.join(runs[:5])}" if runs else ""
        raise RecordingError(
            f"{run_dir}: not a recording (no meta.json or *.arrows segments){hint}. "
            "Recordings live in <state-dir>/recordings/<run-id>/."
        )


def summarize(run_dir: Path) -> dict[str, Any]:
    """Rows, boards, chips, time span, segments, recovered segments, plan points of one recording."""
    check_recording_dir(run_dir)
    try:
        return _summarize(run_dir)
    except ValueError as exc:  # a damaged segment (iter_batches names it)
        raise _damaged(run_dir, exc) from None


def _summarize(run_dir: Path) -> dict[str, Any]:
    meta = read_meta(run_dir / "meta.json")
    rows = valid = 0
    t_min: int | None = None
    t_max: int | None = None
    per_board: dict[str, dict[str, Any]] = {}
    chips_seen: dict[str, set[int]] = {}
    points: set[int] = set()
    for batch in iter_batches(run_dir, "events"):
        n = batch.num_rows
        if n == 0:
            continue
        rows += n
        v = batch.column("valid").to_numpy(zero_copy_only=False)
        valid += int(v.sum())
        t = batch.column("t_ns").to_numpy()
        lo, hi = int(t.min()), int(t.max())
        t_min = lo if t_min is None else min(t_min, lo)
        t_max = hi if t_max is None else max(t_max, hi)
        board = batch.column("board")
        names = board.dictionary.to_pylist()
        idx = board.indices.to_numpy(zero_copy_only=False)
        chip = batch.column("chip").to_numpy()
        counts = np.bincount(idx, minlength=len(names))
        bad = np.bincount(idx[~v], minlength=len(names))
        for i, name in enumerate(names):
            if counts[i] == 0:
                continue
            entry = per_board.setdefault(name, {"rows": 0, "invalid": 0})
            entry["rows"] += int(counts[i])
            entry["invalid"] += int(bad[i])
            chips_seen.setdefault(name, set()).update(np.unique(chip[idx == i]).tolist())
        p = np.unique(batch.column("point").to_numpy())
        points.update(int(x) for x in p if x >= 0)
    for name, entry in per_board.items():
        entry["chips_seen"] = len(chips_seen[name])
        entry["max_chip"] = max(chips_seen[name])
    log_kinds: dict[str, int] = {}
    for batch in iter_batches(run_dir, "log"):
        for kind in batch.column("kind").to_pylist():
            log_kinds[kind] = log_kinds.get(kind, 0) + 1
    parts = sorted(run_dir.glob("*.arrows.part"))
    part_rows = sum(sum(b.num_rows for b in read_stream_tolerant(p)[1]) for p in parts)
    ev, lg = segments(run_dir, "events"), segments(run_dir, "log")
    return {
        "path": str(run_dir),
        "run_id": meta.get("run_id", run_dir.name),
        "host": meta.get("host"),
        "version": meta.get("version"),
        "start_unix_ns": meta.get("start_unix_ns"),
        "stop_unix_ns": meta.get("stop_unix_ns"),
        "boards_meta": meta.get("boards", []),
        "rows": rows,
        "valid": valid,
        "invalid": rows - valid,
        "boards": per_board,
        "t_ns_first": t_min,
        "t_ns_last": t_max,
        "span_s": (t_max - t_min) / 1e9 if t_min is not None and t_max is not None else 0.0,
        "segments": {"events": len(ev), "log": len(lg)},
        "bytes": sum(p.stat().st_size for p in ev + lg),
        "recovered_segments": len(meta.get("recovered", [])),
        "recovered": meta.get("recovered", []),
        "unrecovered_parts": [p.name for p in parts],
        "unrecovered_part_rows": part_rows,
        "points": sorted(points),
        "log_rows": log_kinds,
    }


def convert(run_dir: Path, out: Path, fmt: str, table: str = "events") -> int:
    """Write every ``table`` row (``events`` or ``log``) to ``out`` as Parquet or CSV; returns the rows.

    Written to ``OUT.tmp`` and renamed at the end: a damaged segment (:class:`RecordingError`) or a full disk
    (:class:`OSError`) leaves no half-written ``out`` behind.
    """
    check_recording_dir(run_dir)
    schema = EVENT_SCHEMA if table == "events" else LOG_SCHEMA
    if fmt == "csv" and table == "events":
        schema = schema.set(2, pa.field("board", pa.string(), nullable=False))
    rows = 0
    tmp = out.with_name(out.name + ".tmp")
    writer: pq.ParquetWriter | pacsv.CSVWriter
    try:
        writer = pq.ParquetWriter(str(tmp), schema) if fmt == "parquet" else pacsv.CSVWriter(str(tmp), schema)
        with writer:
            for batch in iter_batches(run_dir, table):
                if fmt == "csv" and table == "events":
                    batch = batch.set_column(2, schema.field(2), batch.column(2).cast(pa.string()))
                writer.write_batch(batch)
                rows += batch.num_rows
        os.replace(tmp, out)
    except ValueError as exc:
        raise _damaged(run_dir, exc) from None
    finally:
        tmp.unlink(missing_ok=True)
    return rows
