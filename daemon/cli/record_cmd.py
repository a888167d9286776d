"""``asicrc record``: summarise (``info``), convert (``convert``) and recover (``recover``) recordings.

A recording is a directory ``<state-dir>/recordings/<run-id>/`` (docs/recording-format.md). ``info`` and
``convert`` read finished segments one batch at a time and never modify the directory; ``recover`` rewrites
torn ``.part`` segments as the daemon does at start, reads every finished segment in full, and moves what it
cannot read to ``DIR/damaged/`` (never deleted), saying why and exiting 2. ``info`` and ``recover`` take
several directories (``var/recordings/*/``). Exit codes: daemon/cli/errors.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from daemon.cli.errors import UsageError, check_output_file
from daemon.events import EVENT_SCHEMA, LOG_SCHEMA
from daemon.exit_codes import EXIT_OK
from daemon.recording import (
    DAMAGED_DIR,
    iter_batches,
    read_meta,
    read_stream_tolerant,
    recover_dir,
    segments,
)


class RecordingError(UsageError):
    """The directory is not a readable recording; the message says what was expected (exit 2)."""


def _damaged(run_dir: Path, exc: ValueError) -> RecordingError:
    return RecordingError(f"{exc}; `asicrc record recover {run_dir}` sets damaged segments aside")


def _check(run_dir: Path) -> None:
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
    _check(run_dir)
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


def _print_info(s: dict[str, Any]) -> None:
    print(f"recording   {s['path']}  (run {s['run_id']}, host {s['host']})")
    if s["start_unix_ns"]:
        start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s["start_unix_ns"] / 1e9))
        print(f"started     {start} (asicrc {s['version']})")
    print(f"rows        {s['rows']:,} ({s['invalid']:,} invalid) over {s['span_s']:.3f} s")
    for name, b in sorted(s["boards"].items()):
        print(f"  board {name}: {b['rows']:,} rows, {b['invalid']:,} invalid, {b['chips_seen']} chip(s) seen")
    seg = s["segments"]
    print(f"segments    {seg['events']} events + {seg['log']} log, {s['bytes']:,} bytes")
    print(f"recovered   {s['recovered_segments']} torn segment(s) recovered at start")
    if s["unrecovered_parts"]:
        print(
            f"UNRECOVERED {len(s['unrecovered_parts'])} .part file(s) with {s['unrecovered_part_rows']:,} "
            "readable rows: run `asicrc record recover DIR` (the daemon does this at start)"
        )
    pts = s["points"]
    print(f"points      {len(pts)}" + (f" ({pts[0]}..{pts[-1]})" if pts else ""))
    if s["log_rows"]:
        print("log         " + ", ".join(f"{k}: {v}" for k, v in sorted(s["log_rows"].items())))


def convert(run_dir: Path, out: Path, fmt: str, table: str = "events") -> int:
    """Write every ``table`` row (``events`` or ``log``) to ``out`` as Parquet or CSV; returns the rows.

    Written to ``OUT.tmp`` and renamed at the end: a damaged segment (:class:`RecordingError`) or a full disk
    (:class:`OSError`) leaves no half-written ``out`` behind.
    """
    _check(run_dir)
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


def _info(args: argparse.Namespace) -> int:
    found = [summarize(Path(d)) for d in args.dir]
    if args.json:
        print(json.dumps(found[0] if len(found) == 1 else found))
    else:
        for i, s in enumerate(found):
            if i:
                print()
            _print_info(s)
    return EXIT_OK


def _convert(args: argparse.Namespace) -> int:
    out = check_output_file(args.out, "OUT")
    try:
        rows = convert(Path(args.dir), out, args.to, args.table)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc}") from exc
    print(f"wrote {rows} {args.table} rows to {args.out} ({args.to})", file=sys.stderr)
    return EXIT_OK


def _recover(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.dir]
    for d in dirs:
        _check(d)
    rec_log = logging.getLogger("daemon.recording")
    level = rec_log.level
    if args.verbose == 0:  # each segment is reported on stdout below; the log would repeat it on stderr
        rec_log.setLevel(logging.ERROR)
    try:
        found = [(d, r) for d in dirs for r in recover_dir(d, check_segments=True)]
    finally:
        rec_log.setLevel(level)
    if args.json:
        print(json.dumps({"recovered": [{"dir": str(d), **r.to_json()} for d, r in found]}))
    else:
        for d, r in found:
            if r.set_aside is not None:
                print(f"{d / r.part}: {r.reason}; moved to {d / r.set_aside} (nothing deleted)")
            else:
                kept = f"kept {r.rows} rows in {r.batches} batches"
                print(f"{d / r.part}: {kept}, dropped {r.lost_bytes} torn bytes")
    aside = [d / r.set_aside for d, r in found if r.set_aside is not None]
    if aside:
        where = sorted({str(p.parent) for p in aside})
        raise RecordingError(
            f"{len(aside)} damaged segment(s) could not be read and were moved to {', '.join(where)}; "
            f"the rest of the recording reads cleanly ({len(found) - len(aside)} torn segment(s) recovered)"
        )
    if not args.json:
        print(f"{len(found)} segment(s) recovered", file=sys.stderr)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``record info|convert|recover`` to the ``asicrc`` parser."""
    p = sub.add_parser("record", help="summarise, convert or recover a recording directory")
    rsub = p.add_subparsers(dest="record_command", metavar="ACTION", required=True)
    run_help = "a recording: <state-dir>/recordings/<run-id> (several: var/recordings/*/)"
    info = rsub.add_parser("info", help="rows, boards, chips, time span, segments, points of a recording")
    info.add_argument("dir", metavar="DIR", nargs="+", help=run_help)
    info.add_argument("--json", action="store_true", help="print JSON on stdout (a list for several DIRs)")
    info.set_defaults(func=_info)
    conv = rsub.add_parser("convert", help="write a recording's events (or log) as Parquet or CSV")
    conv.add_argument("dir", metavar="DIR", help="a recording: <state-dir>/recordings/<run-id>")
    conv.add_argument("--to", choices=("parquet", "csv"), required=True, help="output format")
    conv.add_argument(
        "--table", choices=("events", "log"), default="events", help="which rows (default events)"
    )
    conv.add_argument("out", metavar="OUT", help="output file (written whole or not at all)")
    conv.set_defaults(func=_convert)
    rec = rsub.add_parser(
        "recover",
        help=f"rewrite torn .part segments (the daemon does this at start); set damaged ones aside in "
        f"DIR/{DAMAGED_DIR}/",
    )
    rec.add_argument("dir", metavar="DIR", nargs="+", help=run_help)
    rec.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    rec.set_defaults(func=_recover)
