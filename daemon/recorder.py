"""Crash-safe recordings: Arrow IPC stream segments, rotated and renamed atomically.

Format: docs/recording-format.md. Reading, recovery and the file helpers: :mod:`daemon.recording`.

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
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from daemon.config import RecorderConfig
from daemon.event_format import FORMAT_VERSION
from daemon.events import EVENT_SCHEMA, LOG_SCHEMA, Subscription, is_log_batch
from daemon.recording import (
    FILE_MODE,
    SEGMENT_RE,
    RecoveredSegment,
    fsync_dir,
    make_dir,
    read_meta,
    recover_dir,
    write_json_atomic,
)
from daemon.state import RecorderStats
from daemon.version import package_version

log = logging.getLogger(__name__)

#: ``[recorder]`` defaults (flush/fsync intervals, segment size) that :class:`RecorderPolicy` starts from.
_CONFIG_DEFAULTS = RecorderConfig()


@dataclass(frozen=True, slots=True)
class RecorderPolicy:
    """When to write, sync, rotate and retry. Units: s, bytes, rows. The configurable ones default to
    :class:`daemon.config.RecorderConfig`'s defaults (the one source; build from a config with
    :meth:`from_config`)."""

    flush_interval_s: float = _CONFIG_DEFAULTS.flush_interval_s  # rows lost on a crash <= one interval
    fsync_interval_s: float = _CONFIG_DEFAULTS.fsync_interval_s  # 0 = fsync on every flush
    segment_bytes: int = _CONFIG_DEFAULTS.segment_bytes
    segment_seconds: float = 3600.0
    flush_rows: int = 65_536  # flush early when this many event rows are buffered (memory bound)
    retry_interval_s: float = 10.0  # after a write error, drop (counted) until this much time has passed

    @classmethod
    def from_config(cls, rc: RecorderConfig) -> RecorderPolicy:
        """The policy a ``[recorder]`` section asks for (the other fields keep their defaults)."""
        return cls(
            flush_interval_s=rc.flush_interval_s,
            fsync_interval_s=rc.fsync_interval_s,
            segment_bytes=rc.segment_bytes,
        )


def new_run_id(clock_ns: Callable[[], int] = time.time_ns) -> str:
    """``YYYYmmddTHHMMSSZ-xxxxxx``: sortable by start time, unique by a random suffix."""
    t = time.gmtime(clock_ns() // 1_000_000_000)
    return time.strftime("%Y%m%dT%H%M%SZ", t) + "-" + uuid.uuid4().hex[:6]


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
            self.meta.setdefault("version", package_version())
            self.meta.setdefault("format", FORMAT_VERSION)  # docs/recording-format.md
            self.meta.setdefault("start_unix_ns", time.time_ns())
            self.meta.setdefault("start_monotonic_ns", time.monotonic_ns())
            self.meta.setdefault("boards", [{"name": b} for b in self._boards])
            self.meta.pop("recovered", None)  # meta.json on disk holds the full list
            old = self.run_dir / "meta.json"
            if old.exists():
                prev = read_meta(old)
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
        logs_written = 0
        try:
            if logs:  # first: small, in their own segment, and they hold the safety log
                self._write("log", pa.Table.from_batches(logs, LOG_SCHEMA).combine_chunks().to_batches())
                logs_written = log_rows
            if events:
                self._write_events(events)
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
            self.stats.log_rows += logs_written  # whole batches in the kernel: kept by recovery
            self._fail(exc, dropped=rows, dropped_log=log_rows - logs_written)
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
        fsync_dir(self.run_dir)

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
        """Flush everything, finish open segments, stamp ``stop_unix_ns`` in meta.json. Errors are counted.

        After a write error the last rows get one more attempt here instead of waiting out the retry
        interval: they hold the shutdown's safety log (every board to its floors), the last word of a run.
        """
        self._retry_at = None
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
