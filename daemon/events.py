"""The event pipeline: nonce events as Arrow record batches, fanned out to bounded subscriber queues.

Data flows one way: a board supervisor builds one :class:`pyarrow.RecordBatch` per transport read (or per
group of reads) with :func:`make_event_batch` and calls :meth:`Pipeline.publish`; setpoint, plan, fault and
safety events go through :meth:`Pipeline.log`. Every subscriber (recorder, MQTT, reservoir windowing) has its
own bounded queue; a full queue drops the batch for *that* subscriber only and counts the rows dropped, so no
drop is ever silent. Synchronous listeners (:meth:`Pipeline.add_listener`, e.g. the :class:`DaemonState`
update) run inline in ``publish`` and never drop.

Column names and types are the contract of ``docs/recording-format.md``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from reservoir.substrate import EventSlot
from reservoir.windows import window_events

log = logging.getLogger(__name__)

#: Nonce event columns (docs/recording-format.md). ``board`` is dictionary<int32, string>.
EVENT_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("t_host_ns", pa.int64(), nullable=False),
        pa.field("t_ns", pa.int64(), nullable=False),
        pa.field("board", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("chip", pa.int16(), nullable=False),
        pa.field("core", pa.int16(), nullable=False),
        pa.field("small_core", pa.int8(), nullable=False),
        pa.field("job_id", pa.uint8(), nullable=False),
        pa.field("nonce", pa.uint32(), nullable=False),
        pa.field("version_bits", pa.uint16(), nullable=False),
        pa.field("share_diff", pa.float64(), nullable=False),
        pa.field("valid", pa.bool_(), nullable=False),
        pa.field("voltage_v", pa.float32(), nullable=False),
        pa.field("freq_mhz", pa.float32(), nullable=False),
        pa.field("ticket_diff", pa.float32(), nullable=False),
        pa.field("read_id", pa.int64(), nullable=False),
        pa.field("point", pa.int32(), nullable=False),
        # format 2 (daemon/event_format.py); null = unknown (not given by the producer)
        pa.field("t_wire_ns", pa.int64(), nullable=True),
        pa.field("read_pos", pa.int32(), nullable=True),
        pa.field("read_nonces", pa.int32(), nullable=True),
    ]
)

#: Log columns (docs/recording-format.md): setpoint changes, plan events, faults, safety actions, states.
LOG_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("t_ns", pa.int64(), nullable=False),
        pa.field("board", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
    ]
)

#: Allowed values of the log ``kind`` column.
LOG_KINDS: frozenset[str] = frozenset({"setpoint", "plan", "fault", "safety", "state"})

#: numpy dtype of every event column except ``board``.
EVENT_DTYPES: dict[str, np.dtype[Any]] = {
    f.name: np.dtype(f.type.to_pandas_dtype()) for f in EVENT_SCHEMA if f.name != "board"
}

#: Columns :func:`make_event_batch` fills when omitted, and their value.
EVENT_DEFAULTS: dict[str, int | float | bool] = {"point": -1, "share_diff": 0.0, "version_bits": 0}
#: Nullable columns :func:`make_event_batch` fills with nulls (unknown) when omitted.
EVENT_OPTIONAL: frozenset[str] = frozenset(f.name for f in EVENT_SCHEMA if f.nullable)


class EventBatchError(ValueError):
    """A column given to :func:`make_event_batch` is missing, unknown, mis-sized or of the wrong kind."""


def _coerce(name: str, value: np.ndarray | int | float | bool, n: int) -> np.ndarray:
    """``value`` as a 1-D array of the column dtype, length ``n``; scalars broadcast; lossy casts refused."""
    target = EVENT_DTYPES[name]
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr.item(), dtype=arr.dtype)
    if arr.ndim != 1:
        raise EventBatchError(f"column {name!r}: expected 1-D, got shape {arr.shape}")
    if len(arr) != n:
        raise EventBatchError(f"column {name!r}: length {len(arr)} != {n} (length of t_host_ns)")
    if arr.dtype == target:
        return arr
    kind, tkind = arr.dtype.kind, target.kind
    if tkind == "b":
        if kind != "b":
            raise EventBatchError(f"column {name!r}: expected bool, got {arr.dtype}")
    elif tkind in "iu":
        if kind not in "iu":
            raise EventBatchError(f"column {name!r}: expected an integer dtype, got {arr.dtype}")
        if len(arr):
            info = np.iinfo(target)
            lo, hi = int(arr.min()), int(arr.max())
            if lo < info.min or hi > info.max:
                raise EventBatchError(f"column {name!r}: values {lo}..{hi} outside {target} range")
    elif tkind == "f" and kind not in "iuf":
        raise EventBatchError(f"column {name!r}: expected a numeric dtype, got {arr.dtype}")
    return arr.astype(target)


@functools.lru_cache(maxsize=1024)
def _board_dictionary(board: str) -> pa.Array:
    """The one-entry ``board`` dictionary of a board's batches (cached: boards are few)."""
    return pa.array([board], type=pa.string())


def make_event_batch(board: str, **columns: np.ndarray | int | float | bool) -> pa.RecordBatch:
    """One record batch of nonce events of ``board`` in :data:`EVENT_SCHEMA`.

    Every column of the schema except ``board`` must be given as a 1-D numpy array (or a scalar, broadcast),
    except those in :data:`EVENT_DEFAULTS` and the nullable :data:`EVENT_OPTIONAL` (null when omitted:
    unknown). ``t_ns`` is the raw read time (the daemon gives ``t_host_ns``; docs/recording-format.md).
    Integer arrays are range-checked before narrowing; a bool column accepts bool only. Raises
    :class:`EventBatchError` naming the column.
    """
    unknown = set(columns) - set(EVENT_DTYPES)
    if unknown:
        raise EventBatchError(f"unknown event column(s): {sorted(unknown)}")
    if "t_host_ns" not in columns or np.ndim(columns["t_host_ns"]) != 1:
        raise EventBatchError("column 't_host_ns' must be given as a 1-D array (it sets the batch length)")
    n = len(np.asarray(columns["t_host_ns"]))
    arrays: list[pa.Array] = []
    for field in EVENT_SCHEMA:
        name = field.name
        if name == "board":
            indices = pa.array(np.zeros(n, dtype=np.int32))
            arrays.append(pa.DictionaryArray.from_arrays(indices, _board_dictionary(board), safe=False))
            continue
        if name in columns:
            value = columns[name]
        elif name in EVENT_DEFAULTS:
            value = EVENT_DEFAULTS[name]
        elif name in EVENT_OPTIONAL:
            arrays.append(pa.nulls(n, field.type))
            continue
        else:
            raise EventBatchError(f"missing event column {name!r}")
        arrays.append(pa.array(_coerce(name, value, n), type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=EVENT_SCHEMA)


def make_log_batch(t_ns: int, board: str, kind: str, payload: Mapping[str, Any]) -> pa.RecordBatch:
    """One log row in :data:`LOG_SCHEMA`; ``payload`` is serialised as a JSON object (non-JSON -> str)."""
    if kind not in LOG_KINDS:
        raise ValueError(f"log kind {kind!r} not one of {sorted(LOG_KINDS)}")
    text = json.dumps(dict(payload), sort_keys=True, default=str)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([t_ns], pa.int64()),
            pa.array([board], pa.string()),
            pa.array([kind], pa.string()),
            pa.array([text], pa.string()),
        ],
        schema=LOG_SCHEMA,
    )


def is_log_batch(batch: pa.RecordBatch) -> bool:
    """True for a batch made by :func:`make_log_batch` (subscribers receive events and logs interleaved)."""
    return bool(batch.schema.equals(LOG_SCHEMA))


def event_slots(
    batches: Sequence[pa.RecordBatch],
    starts_ns: np.ndarray,
    slot_ns: int,
    n_chips: int,
    temperature_c: np.ndarray | float = math.nan,
) -> list[EventSlot]:
    """The nonce events of ``batches`` cut into one slot per start by :func:`reservoir.windows.window_events`
    (slot k = [starts[k], starts[k+1]), the last one ``slot_ns`` long; temperature in deg C)."""
    if batches:
        tab = pa.Table.from_batches(list(batches))
        cols = [tab.column(c).to_numpy(zero_copy_only=False) for c in ("t_ns", "chip", "core", "valid")]
    else:
        cols = [np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0, np.int16), np.zeros(0, bool)]
    t, chip, core, valid = cols
    return window_events(t, chip, core, valid, starts_ns, slot_ns, n_chips, temperature_c)


@dataclass(slots=True)
class SubscriberStats:
    """Counters of one subscription since it was made (rows are event or log rows)."""

    delivered_batches: int = 0
    delivered_rows: int = 0
    dropped_batches: int = 0
    dropped_rows: int = 0
    queued: int = 0
    maxsize: int = 0


class Subscription:
    """A bounded FIFO of record batches for one consumer; ``async for`` over it until the pipeline closes.

    Made by :meth:`Pipeline.subscribe`. ``get()`` returns the next batch, or ``None`` once the pipeline (or
    this subscription) is closed and the queue has drained.
    """

    def __init__(self, name: str, maxsize: int, events: bool = True, logs: bool = True) -> None:
        if maxsize < 1:
            raise ValueError(f"subscription {name!r}: maxsize must be >= 1, got {maxsize}")
        self.name = name
        self.events = events
        self.logs = logs
        self.stats = SubscriberStats(maxsize=maxsize)
        self._queue: deque[pa.RecordBatch] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once closed (batches already queued are still returned by :meth:`get`)."""
        return self._closed

    def offer(self, batch: pa.RecordBatch) -> bool:
        """Queue ``batch`` without blocking; False (and counted as dropped) when full or closed."""
        st = self.stats
        if self._closed or len(self._queue) >= st.maxsize:
            st.dropped_batches += 1
            st.dropped_rows += batch.num_rows
            return False
        self._queue.append(batch)
        st.queued = len(self._queue)
        self._wakeup.set()
        return True

    def get_nowait(self) -> pa.RecordBatch | None:
        """The next queued batch, or None when the queue is empty."""
        if not self._queue:
            return None
        batch = self._queue.popleft()
        st = self.stats
        st.queued = len(self._queue)
        st.delivered_batches += 1
        st.delivered_rows += batch.num_rows
        return batch

    async def get(self) -> pa.RecordBatch | None:
        """Wait for the next batch; None when closed and drained."""
        while True:
            batch = self.get_nowait()
            if batch is not None:
                return batch
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    async def wait(self, max_wait_s: float | None = None) -> bool:
        """Wait until a batch is queued or the subscription closes, at most ``max_wait_s``; True if ready."""
        if self._queue or self._closed:
            return True
        self._wakeup.clear()
        try:
            async with asyncio.timeout(max_wait_s):
                await self._wakeup.wait()
        except TimeoutError:
            return False
        return True

    def drain(self) -> list[pa.RecordBatch]:
        """Every queued batch, without waiting (used at shutdown)."""
        out: list[pa.RecordBatch] = []
        while (b := self.get_nowait()) is not None:
            out.append(b)
        return out

    def close(self) -> None:
        """Stop accepting batches and wake the consumer (it still drains what is queued)."""
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> AsyncIterator[pa.RecordBatch]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[pa.RecordBatch]:
        while (batch := await self.get()) is not None:
            yield batch


#: A synchronous listener called inline by :meth:`Pipeline.publish` with (board, batch); must be fast.
Listener = Callable[[str, pa.RecordBatch], None]


class Pipeline:
    """Fan-out of event and log batches to bounded subscriptions and inline listeners.

    Single event loop: call ``publish``/``log`` from the loop that consumes the subscriptions.
    ``clock`` stamps log rows (monotonic ns, the same clock as event ``t_ns``).
    """

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._subs: dict[str, Subscription] = {}
        self._listeners: list[tuple[str, Listener]] = []
        self.published_batches = 0
        self.published_rows = 0
        self.log_rows = 0
        self.listener_errors = 0
        self.closed = False

    def subscribe(self, name: str, maxsize: int, *, events: bool = True, logs: bool = True) -> Subscription:
        """A new bounded subscription (``maxsize`` batches) receiving events and/or logs; names are unique."""
        if name in self._subs:
            raise ValueError(f"subscriber {name!r} already exists")
        sub = Subscription(name, maxsize, events=events, logs=logs)
        if self.closed:
            sub.close()
        self._subs[name] = sub
        return sub

    def unsubscribe(self, name: str) -> None:
        """Close and forget a subscription (its counters stop being reported)."""
        sub = self._subs.pop(name, None)
        if sub is not None:
            sub.close()

    def add_listener(self, name: str, fn: Listener) -> None:
        """Call ``fn(board, batch)`` inline for each event batch (not logs); errors are logged, counted."""
        self._listeners.append((name, fn))

    def publish(self, batch: pa.RecordBatch, board: str | None = None) -> None:
        """Hand an event batch (:func:`make_event_batch`) to every listener and subscription; never blocks.

        ``board`` defaults to the batch's first board name (each batch holds one board).
        """
        if self.closed or batch.num_rows == 0:
            return
        self.published_batches += 1
        self.published_rows += batch.num_rows
        if self._listeners:
            if board is None:
                board = str(batch.column(2).dictionary[0].as_py())
            for name, fn in self._listeners:
                try:
                    fn(board, batch)
                except Exception:
                    self.listener_errors += 1
                    log.exception("event listener %s failed", name)
        for sub in self._subs.values():
            if sub.events:
                sub.offer(batch)

    def log(self, board: str, kind: str, payload: Mapping[str, Any], t_ns: int | None = None) -> None:
        """Publish one log row (``kind`` in :data:`LOG_KINDS`) to subscriptions that take logs."""
        if self.closed:
            return
        batch = make_log_batch(self._clock() if t_ns is None else t_ns, board, kind, payload)
        self.log_rows += 1
        for sub in self._subs.values():
            if sub.logs:
                sub.offer(batch)

    def stats(self) -> dict[str, SubscriberStats]:
        """Counters per subscriber name (live objects; read at scrape time)."""
        return {name: sub.stats for name, sub in self._subs.items()}

    @property
    def dropped_rows(self) -> int:
        """Rows dropped over all subscribers."""
        return sum(s.stats.dropped_rows for s in self._subs.values())

    def close(self) -> None:
        """Stop publishing and close every subscription (consumers drain and end)."""
        self.closed = True
        for sub in self._subs.values():
            sub.close()
