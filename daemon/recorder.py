"""Crash-safe recordings: Arrow IPC stream segments, rotated and renamed atomically.

Format: docs/recording-format.md.

:class:`Recorder` is a synchronous writer with an injected clock (unit-testable without sleeping);
:meth:`Recorder.run` is the asyncio consumer of a pipeline subscription that buffers batches and hands each
flush (write, flush, fsync, rotate) to a worker thread so a slow SD card never stalls the event loop.

Durability: a flush writes the buffered rows to the kernel (they survive a killed process, so at most one
flush interval of rows is lost); an fsync every ``fsync_interval_s`` makes them survive a power cut. A full or
read-only directory never raises out of the recorder: the error is logged once, counted in
:class:`~daemon.state.RecorderStats`, rows are dropped and counted, and the segment is retried later.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.metadata
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from daemon.events import EVENT_SCHEMA, LOG_SCHEMA, Subscription, is_log_batch
from daemon.state import RecorderStats

log = logging.getLogger(__name__)

#: File and directory modes (the service user and its group only; design: never world-readable data).
FILE_MODE = 0o640
DIR_MODE = 0o750

SEGMENT_RE = re.compile(r"^(events|log)-(\d{6})\.arrows(\.part)?$")


@dataclass(frozen=True, slots=True)
class RecorderPolicy:
    """When to write, sync, rotate and retry. Units: s, bytes, rows. Defaults match daemon/defaults.toml."""

    flush_interval_s: float = 1.0  # rows lost on a crash <= one interval
    fsync_interval_s: float = 5.0  # 0 = fsync on every flush
    segment_bytes: int = 64 * 1024 * 1024
    segment_seconds: float = 3600.0
    flush_rows: int = 65_536  # flush early when this many event rows are buffered (memory bound)
    retry_interval_s: float = 10.0  # after a write error, drop (counted) until this much time has passed


def _fsync_dir(path: Path) -> None:
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


def write_json_atomic(path: Path, obj: Mapping[str, Any]) -> None:
    """Write ``obj`` as JSON to ``path`` via a temp file, fsync, rename, fsync dir."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()  # never leave a half-written temp file on a full disk
        raise
    _fsync_dir(path.parent)


def _version() -> str:
    try:
        return importlib.metadata.version("asicrc")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def new_run_id(clock_ns: Callable[[], int] = time.time_ns) -> str:
    """``YYYYmmddTHHMMSSZ-xxxxxx``: sortable by start time, unique by a random suffix."""
    t = time.gmtime(clock_ns() // 1_000_000_000)
    return time.strftime("%Y%m%dT%H%M%SZ", t) + "-" + uuid.uuid4().hex[:6]


# --------------------------------------------------------------------------------------------- recovery


@dataclass(slots=True)
class RecoveredSegment:
    """One torn ``.part`` found at start: whole batches kept in ``path``; ``lost_bytes`` of torn tail."""

    part: str
    path: str | None
    rows: int
    batches: int
    lost_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "path": self.path,
            "rows": self.rows,
            "batches": self.batches,
            "lost_bytes": self.lost_bytes,
        }


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


def scan_stream(path: Path, keep: bool = False) -> StreamScan:
    """Read an IPC stream file that may end in a torn message, one batch at a time."""
    scan = StreamScan(None, 0, 0, 0, False, [])
    with pa.OSFile(str(path), "rb") as f:
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
    needs no free space and no second copy. A part without a readable schema or rows is removed (``path``
    None).
    """
    size = part.stat().st_size
    scan = scan_stream(part)
    final = part.with_suffix("")  # drop ".part"
    if scan.schema is None or scan.rows == 0:
        part.unlink()
        _fsync_dir(part.parent)
        return RecoveredSegment(part.name, None, 0, 0, size)
    with open(part, "r+b") as fh:
        fh.truncate(scan.good_bytes)
        fh.seek(scan.good_bytes)
        fh.write(EOS_MARKER)
        fh.flush()
        os.fchmod(fh.fileno(), FILE_MODE)
        os.fsync(fh.fileno())
    os.replace(part, final)
    _fsync_dir(part.parent)
    return RecoveredSegment(part.name, final.name, scan.rows, scan.batches, size - scan.good_bytes)


def _read_meta(path: Path) -> dict[str, Any]:
    """``meta.json`` as a dict; ``{}`` when unreadable, not JSON, or JSON but not an object."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError):
        return {}
    return obj if isinstance(obj, dict) else {}


def recover_dir(run_dir: Path) -> list[RecoveredSegment]:
    """Recover every ``.part`` in one recording directory and note it in its ``meta.json``."""
    found = [recover_segment(p) for p in sorted(run_dir.glob("*.arrows.part")) if SEGMENT_RE.match(p.name)]
    if found:
        meta_path = run_dir / "meta.json"
        meta: dict[str, Any] = {}
        if meta_path.exists():
            meta = _read_meta(meta_path)
        if not isinstance(meta.get("recovered"), list):
            meta["recovered"] = []  # damaged: the list starts again
        meta["recovered"].extend(r.to_json() for r in found)
        write_json_atomic(meta_path, meta)
        for r in found:
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


# --------------------------------------------------------------------------------------------- writing


@dataclass(slots=True)
class _Segment:
    """One open ``.part`` stream."""

    kind: str
    seq: int
    part: Path
    fh: BinaryIO
    writer: pa.ipc.RecordBatchStreamWriter
    opened_s: float
    boards: list[str] = field(default_factory=list)  # event segments: the board dictionary in use

    @property
    def size(self) -> int:
        return self.fh.tell()


class Recorder:
    """Writes event and log batches to one recording directory (``run_dir``).

    ``boards``: names known at start (the event ``board`` dictionary of each segment starts with them; a new
    board rotates the segment so every segment has one dictionary). ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        policy: RecorderPolicy | None = None,
        stats: RecorderStats | None = None,
        meta: Mapping[str, Any] | None = None,
        boards: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.policy = policy or RecorderPolicy()
        self.stats = stats if stats is not None else RecorderStats()
        self.meta: dict[str, Any] = dict(meta or {})
        self._boards = list(boards)
        self._clock = clock
        self._events: list[pa.RecordBatch] = []
        self._event_rows = 0
        self._logs: list[pa.RecordBatch] = []
        self._seg: dict[str, _Segment | None] = {"events": None, "log": None}
        self._seq: dict[str, int] = {"events": 0, "log": 0}
        self._last_fsync = clock()
        self._retry_at: float | None = None
        self._opened = False
        self.fsyncs = 0  # data fsyncs done by flush (not counting segment close)

    # -- setup -------------------------------------------------------------------------------------------
    def open(self) -> list[RecoveredSegment]:
        """Make the directory, recover its torn parts, write ``meta.json``; errors are counted, not raised."""
        self.stats.path = str(self.run_dir)
        try:
            make_dir(self.run_dir)
            recovered = recover_dir(self.run_dir)
            for p in self.run_dir.iterdir():
                m = SEGMENT_RE.match(p.name)
                if m:
                    self._seq[m.group(1)] = max(self._seq[m.group(1)], int(m.group(2)) + 1)
            self.meta.setdefault("run_id", self.run_dir.name)
            self.meta.setdefault("host", socket.gethostname())
            self.meta.setdefault("version", _version())
            self.meta.setdefault("start_unix_ns", time.time_ns())
            self.meta.setdefault("start_monotonic_ns", time.monotonic_ns())
            self.meta.setdefault("boards", [{"name": b} for b in self._boards])
            self.meta.pop("recovered", None)  # meta.json on disk holds the full list
            old = self.run_dir / "meta.json"
            if old.exists():
                prev = _read_meta(old)
                # a reopened run keeps its first start time; everything else is refreshed
                starts: dict[str, Any] = {
                    k: prev[k] for k in ("start_unix_ns", "start_monotonic_ns") if k in prev
                }
                self.meta = {**prev, **self.meta, **starts}
            write_json_atomic(self.run_dir / "meta.json", self.meta)
        except OSError as exc:
            self._fail(exc, dropped=0)
            return []
        self._opened = True
        self.stats.recovered_segments += len(recovered)
        self.stats.recovered_rows += sum(r.rows for r in recovered)
        return recovered

    # -- buffering -----------------------------------------------------------------------------------------
    def add(self, batch: pa.RecordBatch) -> None:
        """Buffer an event or log batch (written by the next :meth:`flush`).

        A batch in neither schema is dropped and counted in ``stats.rejected_rows`` (logged once).
        """
        if is_log_batch(batch):
            self._logs.append(batch)
        elif batch.schema.equals(EVENT_SCHEMA):
            self._events.append(batch)
            self._event_rows += batch.num_rows
        else:
            if not self.stats.rejected_rows:
                log.error(
                    "recorder: dropping a batch that is neither an event nor a log batch: %s", batch.schema
                )
            self.stats.rejected_rows += batch.num_rows

    @property
    def buffered_rows(self) -> int:
        return self._event_rows

    def flush_due(self, last_flush_s: float) -> bool:
        """True when the flush interval has passed since ``last_flush_s`` or the buffer is over its bound."""
        return (
            self._event_rows >= self.policy.flush_rows
            or self._clock() - last_flush_s >= self.policy.flush_interval_s
        )

    # -- writing ---------------------------------------------------------------------------------------------
    def flush(self, *, fsync: bool | None = None) -> None:
        """Write buffered batches, flush to the kernel, fsync when due (or forced), rotate when due."""
        events, logs = self._events, self._logs
        rows, log_rows = self._event_rows, sum(b.num_rows for b in logs)
        self._events, self._logs, self._event_rows = [], [], 0
        now = self._clock()
        if self._retry_at is not None:
            if now < self._retry_at:
                self._count_dropped(rows, log_rows)
                return
            self._retry_at = None
        if not self._opened:
            self.open()
            if not self._opened:
                self._count_dropped(rows, log_rows)
                return
        try:
            if events:
                self._write_events(events)
            if logs:
                self._write("log", pa.Table.from_batches(logs, LOG_SCHEMA).combine_chunks().to_batches())
            for seg in self._seg.values():
                if seg is not None:
                    seg.fh.flush()
            due = self.policy.fsync_interval_s <= 0 or now - self._last_fsync >= self.policy.fsync_interval_s
            if fsync or (fsync is None and due):
                for seg in self._seg.values():
                    if seg is not None:
                        os.fsync(seg.fh.fileno())
                        self.fsyncs += 1
                self._last_fsync = now
            for kind in ("events", "log"):
                seg = self._seg[kind]
                if seg is not None and (
                    seg.size >= self.policy.segment_bytes or now - seg.opened_s >= self.policy.segment_seconds
                ):
                    self._close_segment(kind)
        except (OSError, pa.ArrowException) as exc:
            self._fail(exc, dropped=rows, dropped_log=log_rows)
            return
        self.stats.rows += rows
        self.stats.log_rows += log_rows
        if not self.stats.healthy:
            log.warning("recorder: writing to %s again", self.run_dir)
        self.stats.healthy = True

    def _write_events(self, batches: list[pa.RecordBatch]) -> None:
        names: set[str] = set()
        for b in batches:
            names.update(b.column(2).dictionary.to_pylist())
        new = sorted(names - set(self._boards))
        if new:
            self._boards.extend(new)
            if self._seg["events"] is not None:
                self._close_segment("events")  # one dictionary per segment
            self.meta["boards"] = self.meta.get("boards", []) + [{"name": n} for n in new]
            write_json_atomic(self.run_dir / "meta.json", self.meta)
        seg = self._seg["events"] or self._open_segment("events")
        index = {name: i for i, name in enumerate(seg.boards)}
        dictionary = pa.array(seg.boards, pa.string())
        fixed = []
        for b in batches:
            col = b.column(2)
            remap = np.array([index[n] for n in col.dictionary.to_pylist()], np.int32)
            idx = remap[col.indices.to_numpy(zero_copy_only=False)]
            board = pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), dictionary)
            fixed.append(b.set_column(2, EVENT_SCHEMA.field(2), board))
        table = pa.Table.from_batches(fixed, EVENT_SCHEMA).combine_chunks()
        self._write("events", table.to_batches())

    def _write(self, kind: str, batches: list[pa.RecordBatch]) -> None:
        seg = self._seg[kind] or self._open_segment(kind)
        before = seg.size
        for b in batches:
            seg.writer.write_batch(b)
        self.stats.batches += len(batches)
        self.stats.bytes += seg.size - before

    def _open_segment(self, kind: str) -> _Segment:
        seq = self._seq[kind]
        part = self.run_dir / f"{kind}-{seq:06d}.arrows.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        fh: BinaryIO = open(fd, "wb")  # noqa: SIM115 - owned by the segment, closed in _close_segment
        try:
            os.fchmod(fd, FILE_MODE)
            schema = EVENT_SCHEMA if kind == "events" else LOG_SCHEMA
            writer = pa.ipc.new_stream(fh, schema)
        except BaseException:
            fh.close()
            raise
        self._seq[kind] = seq + 1
        seg = _Segment(kind, seq, part, fh, writer, self._clock(), boards=list(self._boards))
        self._seg[kind] = seg
        self.stats.segments += 1
        return seg

    def _close_segment(self, kind: str) -> None:
        """Finish a segment: end-of-stream marker, flush, fsync, rename ``.part`` -> ``.arrows``, sync dir."""
        seg = self._seg[kind]
        if seg is None:
            return
        self._seg[kind] = None
        try:
            before = seg.size
            seg.writer.close()
            self.stats.bytes += seg.size - before
            seg.fh.flush()
            os.fsync(seg.fh.fileno())
        finally:
            seg.fh.close()
        os.replace(seg.part, seg.part.with_suffix(""))
        _fsync_dir(self.run_dir)

    def _count_dropped(self, rows: int, log_rows: int) -> None:
        """Count rows lost to a write error: event rows and log rows separately."""
        self.stats.error_dropped_rows += rows
        self.stats.error_dropped_log_rows += log_rows

    def _fail(self, exc: Exception, dropped: int, dropped_log: int = 0) -> None:
        """Count a write error, drop the buffered rows, abandon open segments, schedule a retry."""
        self.stats.write_errors += 1
        self._count_dropped(dropped, dropped_log)
        code = getattr(exc, "errno", None)
        reason = errno.errorcode.get(code, "") if isinstance(code, int) else ""
        text = getattr(exc, "strerror", None) or str(exc)
        msg = f"cannot write recording in {self.run_dir}: {text} {reason}".strip()
        self.stats.last_error = msg
        if self.stats.healthy:
            log.error(
                "recorder: %s; dropping rows (counted), retrying every %g s",
                msg,
                self.policy.retry_interval_s,
            )
        self.stats.healthy = False
        for kind, seg in self._seg.items():
            if seg is not None:
                with contextlib.suppress(Exception):
                    seg.fh.close()  # left as .part: recovered on retry or at the next start
                self._seg[kind] = None
        self._opened = False
        self._retry_at = self._clock() + self.policy.retry_interval_s

    def close(self) -> None:
        """Flush everything, finish open segments, stamp ``stop_unix_ns`` in meta.json. Errors are counted."""
        self.flush(fsync=True)
        try:
            for kind in ("events", "log"):
                self._close_segment(kind)
            if self._opened:
                self.meta["stop_unix_ns"] = time.time_ns()
                write_json_atomic(self.run_dir / "meta.json", self.meta)
        except OSError as exc:
            self._fail(exc, dropped=0)

    # -- asyncio consumer ----------------------------------------------------------------------------------
    async def run(self, sub: Subscription) -> None:
        """Consume ``sub`` until it closes: buffer, flush on the interval in a worker thread, then close.

        Cancelling the task also flushes and closes (the shutdown path of the daemon); a flush already running
        in the worker thread is waited for first, so two threads never touch a segment.
        """
        inflight: asyncio.Task[Any] | None = None

        async def off_loop(fn: Callable[[], object]) -> None:
            nonlocal inflight
            inflight = asyncio.ensure_future(asyncio.to_thread(fn))
            await asyncio.shield(inflight)

        try:
            await off_loop(self.open)
            last_flush = self._clock()
            while True:
                while (batch := sub.get_nowait()) is not None:
                    self.add(batch)
                if self.flush_due(last_flush):
                    await off_loop(self.flush)
                    last_flush = self._clock()
                    continue
                if sub.closed:
                    break
                wait = max(0.0, self.policy.flush_interval_s - (self._clock() - last_flush))
                await sub.wait(wait)
        finally:
            if inflight is not None and not inflight.done():
                await asyncio.wait([inflight])
            for batch in sub.drain():
                self.add(batch)
            await asyncio.shield(asyncio.to_thread(self.close))


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
    :class:`ValueError` naming the segment (the batches before it were already yielded).
    """
    schema = EVENT_SCHEMA if kind == "events" else LOG_SCHEMA
    for path in segments(run_dir, kind):
        with pa.OSFile(str(path), "rb") as f:
            try:
                reader = pa.ipc.open_stream(f)
                if not reader.schema.equals(schema):
                    raise ValueError(f"schema is not the {kind} schema: {reader.schema}")
                for i, batch in enumerate(reader):
                    try:
                        batch.validate(full=True)
                    except pa.ArrowException as exc:
                        raise ValueError(f"batch {i} is damaged: {exc}") from exc
                    yield batch
            except (pa.ArrowException, ValueError) as exc:
                raise ValueError(f"corrupted recording segment {path}: {exc}") from exc


def read_table(run_dir: Path, kind: str = "events") -> pa.Table:
    """All finished segments of ``kind`` as one table (board dictionaries unified).

    Raises :class:`ValueError` naming the segment when one is damaged.
    """
    schema = EVENT_SCHEMA if kind == "events" else LOG_SCHEMA
    table = pa.Table.from_batches(list(iter_batches(run_dir, kind)), schema)
    return table.unify_dictionaries()
