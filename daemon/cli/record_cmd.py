"""``asicrc record``: summarise (``info``), convert (``convert``) and recover (``recover``) recordings.

A recording is a directory ``<state-dir>/recordings/<run-id>/`` (docs/recording-format.md). ``info`` and
``convert`` read finished segments one batch at a time and never modify the directory; ``recover`` rewrites
torn ``.part`` segments as the daemon does at start, reads every finished segment in full, and moves what it
cannot read to ``DIR/damaged/`` (never deleted), saying why and exiting 2. ``info`` and ``recover`` take
several directories (``var/recordings/*/``). The summary and the conversion are
:mod:`daemon.recording_summary`; exit codes: daemon/exit_codes.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daemon.cli.errors import UsageError, check_output_file
from daemon.exit_codes import EXIT_OK
from daemon.recording import DAMAGED_DIR, recover_dir
from daemon.recording_summary import RecordingError, check_recording_dir, convert, summarize


@contextmanager
def _usage_errors() -> Iterator[None]:
    """A directory that is not a readable recording is a usage error (exit 2)."""
    try:
        yield
    except RecordingError as exc:
        raise UsageError(str(exc)) from None


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


def _info(args: argparse.Namespace) -> int:
    with _usage_errors():
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
        with _usage_errors():
            rows = convert(Path(args.dir), out, args.to, args.table)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc}") from exc
    print(f"wrote {rows} {args.table} rows to {args.out} ({args.to})", file=sys.stderr)
    return EXIT_OK


def _recover(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.dir]
    with _usage_errors():
        for d in dirs:
            check_recording_dir(d)
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
        raise UsageError(
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
