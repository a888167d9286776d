"""Recording directories on disk: file modes, atomic JSON, tolerant scanning, crash recovery and reading.

Format: docs/recording-format.md. The writer is :class:`daemon.recorder.Recorder`; everything here works on
the files alone (``asicrc record``, the collector, the tests), without a running recorder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from daemon.event_format import LEGACY_NAMES, upgrade_events
from daemon.events import EVENT_SCHEMA, LOG_SCHEMA

log = logging.getLogger(__name__)

#: File and directory modes (the service user and its group only; design: never world-readable data).
FILE_MODE = 0o640
DIR_MODE = 0o750

SEGMENT_RE = re.compile(r"^(events|log)-(\d{6})\.arrows(\.part)?$")


def fsync_dir(path: Path) -> None:
    """fsync a directory (makes a rename or a new file in it durable)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir(path: Path) -> None:
    """``mkdir -p`` with :data:`DIR_MODE` on every directory created."""
    if path.is_dir():
        return
    make_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, DIR_MODE)
        os.chmod(path, DIR_MODE)  # umask-proof


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` so that a crash leaves either the old file or the new one.

    The text is encoded first (an unserialisable object raises before any file is touched), written to a
    hidden temp file ``.<name>.tmp`` in the same directory, fsynced, renamed over ``path``, and the directory
    fsynced. Missing directories are created 0750 and the file 0640 whatever the umask (a leftover temp
    file's mode is reset too). On any failure the temp file is removed and the error raised.
    """
    data = (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()
    make_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()  # never leave a half-written temp file (e.g. on a full disk)
        raise
    fsync_dir(path.parent)


# --------------------------------------------------------------------------------------------- recovery


#: Where recovery moves segments it cannot read (never deleted): ``<run>/damaged/<name>``.
DAMAGED_DIR = "damaged"


@dataclass(slots=True)
class RecoveredSegment:
    """One torn ``.part`` found at start: whole batches kept in ``path``; ``lost_bytes`` of torn tail.

    A segment that cannot be read at all (no schema, another schema, damage inside a finished segment) is
    moved whole to ``set_aside`` (``damaged/<name>``, relative to the run) with ``reason``; ``path`` is None.
    """

    part: str
    path: str | None
    rows: int
    batches: int
    lost_bytes: int
    set_aside: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Arrow IPC end-of-stream marker (continuation token 0xFFFFFFFF, then a zero metadata length).
EOS_MARKER = b"\xff\xff\xff\xff\x00\x00\x00\x00"


@dataclass(slots=True)
class StreamScan:
    """What a tolerant pass over an IPC stream file found (batches are kept only when asked)."""

    schema: pa.Schema | None
    rows: int
    batches: int
    good_bytes: int  # offset just past the last whole message
    clean_end: bool  # the stream ended with its end-of-stream marker
    kept: list[pa.RecordBatch]


def scan_stream(path: Path, keep: bool = False, mmap: bool = False) -> StreamScan:
    """Read an IPC stream file that may end in a torn message, one batch at a time. ``mmap``: kept batches
    point into a memory map of the file (no copy; the file must not be truncated while they are in use)."""
    scan = StreamScan(None, 0, 0, 0, False, [])
    with pa.memory_map(str(path)) if mmap else pa.OSFile(str(path), "rb") as f:
        try:
            reader = pa.ipc.open_stream(f)
        except (pa.ArrowException, OSError):  # any damage to the schema message: nothing to keep
            return scan
        scan.schema = reader.schema
        scan.good_bytes = f.tell()
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                scan.clean_end = True
                break
            except (pa.ArrowException, OSError):  # torn or corrupted message: the tail starts here
                break
            try:
                batch.validate(full=True)
            except pa.ArrowException:  # a message that parses but whose buffers are damaged
                break
            scan.rows += batch.num_rows
            scan.batches += 1
            scan.good_bytes = f.tell()
            if keep:
                scan.kept.append(batch)
    return scan


def read_stream_tolerant(path: Path) -> tuple[pa.Schema | None, list[pa.RecordBatch], int]:
    """(schema, whole batches, bytes up to the last whole message) of a possibly torn IPC stream file."""
    scan = scan_stream(path, keep=True)
    return scan.schema, scan.kept, scan.good_bytes


def recover_segment(part: Path) -> RecoveredSegment:
    """Cut a torn ``*.arrows.part`` after its last whole batch, end the stream, rename it to ``*.arrows``.

    The cut is made in place (truncate, append the end-of-stream marker, fsync, rename, fsync dir), so it
    needs no free space and no second copy. A part whose schema is readable but which holds no whole batch
    is removed (``path`` None; an empty file likewise); a part with bytes but no readable schema, or another
    schema, is moved aside (:func:`set_aside`), never deleted.
    """
    size = part.stat().st_size
    scan = scan_stream(part)
    final = part.with_suffix("")  # drop ".part"
    reason = _schema_problem(part, scan)
    if reason is not None and size > 0:
        return set_aside(part, reason, scan)
    if scan.schema is None or scan.rows == 0:
        part.unlink()
        fsync_dir(part.parent)
        return RecoveredSegment(part.name, None, 0, 0, size)
    with open(part, "r+b") as fh:
        fh.truncate(scan.good_bytes)
        fh.seek(scan.good_bytes)
        fh.write(EOS_MARKER)
        fh.flush()
        os.fchmod(fh.fileno(), FILE_MODE)
        os.fsync(fh.fileno())
    os.replace(part, final)
    fsync_dir(part.parent)
    return RecoveredSegment(part.name, final.name, scan.rows, scan.batches, size - scan.good_bytes)


def _schema_problem(path: Path, scan: StreamScan) -> str | None:
    """Why ``path`` is not a segment of its kind (None when its schema is the expected one)."""
    m = SEGMENT_RE.match(path.name)
    expected = LOG_SCHEMA if m and m.group(1) == "log" else EVENT_SCHEMA
    if scan.schema is None:
        return "not an Arrow IPC stream (no readable schema)"
    if not scan.schema.equals(expected):
        return f"not the {'log' if expected is LOG_SCHEMA else 'events'} schema"
    return None


def set_aside(path: Path, reason: str, scan: StreamScan | None = None) -> RecoveredSegment:
    """Move an unreadable segment whole to ``<run>/damaged/`` (never deleted) and say why."""
    size = path.stat().st_size
    dest_dir = path.parent / DAMAGED_DIR
    make_dir(dest_dir)
    dest = dest_dir / path.name
    n = 1
    while dest.exists():  # a second damaged file of the same name (recovered twice): keep both
        dest, n = dest_dir / f"{path.name}.{n}", n + 1
    os.replace(path, dest)
    fsync_dir(dest_dir)
    fsync_dir(path.parent)
    rows, batches = (scan.rows, scan.batches) if scan is not None else (0, 0)
    log.warning("%s: %s; moved to %s", path, reason, dest)
    return RecoveredSegment(path.name, None, rows, batches, size, f"{DAMAGED_DIR}/{dest.name}", reason)


def check_finished(path: Path) -> RecoveredSegment | None:
    """Read a finished segment in full (each batch validated); set it aside if damaged, else None."""
    scan = scan_stream(path)
    reason = _schema_problem(path, scan)
    if reason is None and not scan.clean_end:
        reason = f"damaged after {scan.batches} whole batches ({scan.rows} rows) at byte {scan.good_bytes}"
    if reason is None:
        return None
    return set_aside(path, reason, scan)


def read_meta(path: Path) -> dict[str, Any]:
    """``meta.json`` as a dict; ``{}`` when unreadable, not JSON, or JSON but not an object."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError):
        return {}
    return obj if isinstance(obj, dict) else {}


def recover_dir(run_dir: Path, check_segments: bool = False) -> list[RecoveredSegment]:
    """Recover every ``.part`` in one recording directory and note it in its ``meta.json``.

    With ``check_segments`` (``asicrc record recover``; too slow for every daemon start) every finished
    segment is read in full too, and a damaged one is set aside.
    """
    found = [recover_segment(p) for p in sorted(run_dir.glob("*.arrows.part")) if SEGMENT_RE.match(p.name)]
    if check_segments:
        done = (check_finished(p) for p in segments(run_dir, "events") + segments(run_dir, "log"))
        found.extend(r for r in done if r is not None)
    if found:
        meta_path = run_dir / "meta.json"
        meta: dict[str, Any] = {}
        if meta_path.exists():
            meta = read_meta(meta_path)
        if not isinstance(meta.get("recovered"), list):
            meta["recovered"] = []  # damaged: the list starts again
        meta["recovered"].extend(r.to_json() for r in found)
        write_json_atomic(meta_path, meta)
        for r in found:
            if r.set_aside is not None:
                continue  # logged by set_aside()
            log.warning(
                "recovered torn segment %s/%s: %d rows in %d batches kept, %d bytes of torn tail dropped",
                run_dir,
                r.part,
                r.rows,
                r.batches,
                r.lost_bytes,
            )
    return found


def recover_all(root: Path) -> list[RecoveredSegment]:
    """Recover torn segments in every run directory under ``root`` (``<state>/recordings``)."""
    if not root.is_dir():
        return []
    out: list[RecoveredSegment] = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        out.extend(recover_dir(d))
    return out


# --------------------------------------------------------------------------------------------- reading


def segments(run_dir: Path, kind: str = "events") -> list[Path]:
    """Finished segments of ``kind`` (``events`` or ``log``) in sequence order."""
    out = []
    for p in run_dir.iterdir():
        m = SEGMENT_RE.match(p.name)
        if m and m.group(1) == kind and not m.group(3):
            out.append((int(m.group(2)), p))
    return [p for _, p in sorted(out)]


def iter_batches(run_dir: Path, kind: str = "events") -> Iterator[pa.RecordBatch]:
    """Every record batch of every finished segment, in order (memory: one batch at a time).

    Each batch is validated (``validate(full=True)``) before it is returned; a damaged segment raises
    :class:`ValueError` naming the segment (the batches before it were already yielded). Event batches of an
    older format are returned in the current one (:func:`daemon.event_format.upgrade_events`).
    """
    schema = EVENT_SCHEMA if kind == "events" else LOG_SCHEMA
    for path in segments(run_dir, kind):
        with pa.OSFile(str(path), "rb") as f:
            try:
                reader = pa.ipc.open_stream(f)
                legacy = kind == "events" and tuple(reader.schema.names) == LEGACY_NAMES
                if not reader.schema.equals(schema) and not legacy:
                    raise ValueError(f"schema is not the {kind} schema: {reader.schema}")
                for i, batch in enumerate(reader):
                    try:
                        batch.validate(full=True)
                    except pa.ArrowException as exc:
                        raise ValueError(f"batch {i} is damaged: {exc}") from exc
                    yield upgrade_events(batch) if legacy else batch
            except (pa.ArrowException, ValueError, OSError) as exc:  # pyarrow: OSError for a bad flatbuffer
                raise ValueError(f"corrupted recording segment {path}: {exc}") from exc


def read_table(run_dir: Path, kind: str = "events") -> pa.Table:
    """All finished segments of ``kind`` as one table (board dictionaries unified).

    Raises :class:`ValueError` naming the segment when one is damaged.
    """
    schema = EVENT_SCHEMA if kind == "events" else LOG_SCHEMA
    table = pa.Table.from_batches(list(iter_batches(run_dir, kind)), schema)
    return table.unify_dictionaries()
