"""A dedicated reader thread per port: reads keep their deadline when the event loop is late.

A real serial port buffers only a few KiB (at 3.125 Mbaud, ~312 kB/s, that is ~13 ms), while an event loop on
a busy host can be late by much more. :class:`ReaderThread` blocks in ``poll`` on the port on its own thread
(mostly asleep, so the OS scheduler wakes it promptly), reads whatever arrived, stamps each read with the
injected clock the moment ``os.read`` returned and numbers it, and queues it as a :class:`ReadBatch`. The
loop takes the queued batches whenever it runs (:meth:`ReaderThread.get`); it is woken only when it waits
on an empty queue (once per group of reads, :data:`NOTIFY_AFTER_NS`), so a late loop finds every read of the
time it was away, each with its own time stamp.

The thread also keeps its own view of silence (:meth:`ReaderThread.quiet_ns`): how long it has watched the
port without a byte. Time during which the thread itself did not run (a stalled process) is not counted,
so scheduling delay is never mistaken for a silent board.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import select
import threading
from collections.abc import Callable

from drivers.transport.base import ReadBatch

log = logging.getLogger(__name__)

#: Largest single os.read (bytes); a 3.125 Mbaud link delivers ~312 kB/s, so reads stay far below this.
READ_CHUNK = 65_536
#: Longest poll (ms) between two looks at the stop flag and the silence clock when the port is quiet.
POLL_MS = 100
#: A waiting loop is told about new reads this long (ns) after the first of them, so that it wakes once per
#: group of reads rather than once per read (CPU); the reads keep their own stamps, so timestamps do not
#: depend on it. 1 ms adds at most ~1 ms to a register round trip.
NOTIFY_AFTER_NS = 1_000_000


class ReaderThread:
    """Read ``fd`` on a daemon thread and hand stamped :class:`ReadBatch` items to ``loop``.

    ``clock`` stamps each read (ns; ``time.monotonic_ns`` in production). The end of the stream (EOF, a read
    error, :meth:`stop`) is signalled once: :meth:`get` then returns None after the queued batches.
    """

    def __init__(
        self,
        fd: int,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], int],
        *,
        name: str = "port",
        first_id: int = 0,
        notify_after_ns: int = NOTIFY_AFTER_NS,
    ) -> None:
        self._fd = fd
        self._loop = loop
        self._clock = clock
        self._name = name
        self._next_id = first_id
        self._notify_after_ns = notify_after_ns
        self._lock = threading.Lock()
        self._queue: collections.deque[ReadBatch] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._stop_r, self._stop_w = os.pipe()
        now = clock()
        self._last_read_ns = now
        self._last_look_ns = now
        self._thread = threading.Thread(target=self._run, name=f"asicrc-read-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def next_id(self) -> int:
        """The read id the next read will get (ids keep counting across reopened ports)."""
        return self._next_id

    # ------------------------------------------------------------------ thread side

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        poller.register(self._stop_r, select.POLLIN)
        clock, delay = self._clock, self._notify_after_ns
        notify_at: int | None = None  # when to wake a waiting loop for reads it has not been told about
        try:
            while True:
                timeout_ms = POLL_MS if notify_at is None else max(0, -((clock() - notify_at) // 1_000_000))
                events = poller.poll(timeout_ms)
                now = clock()
                if any(fd == self._stop_r for fd, _ in events):
                    return
                if events:
                    try:
                        data = os.read(self._fd, READ_CHUNK)
                    except (BlockingIOError, InterruptedError):
                        if any(ev & (select.POLLERR | select.POLLHUP) for _, ev in events):
                            return  # hung up with nothing left to read
                        continue
                    except OSError as exc:
                        if exc.errno != errno.EIO:
                            log.debug("%s: read failed: %s", self._name, exc)
                        return
                    now = clock()  # the read's own time, taken on this thread as it returned
                    if not data:
                        return
                    with self._lock:
                        self._queue.append(ReadBatch(data, now, self._next_id))
                    self._next_id += 1
                    self._last_read_ns = now
                    if notify_at is None:
                        notify_at = now + delay
                self._last_look_ns = now
                if notify_at is not None and now >= notify_at:
                    notify_at = None
                    self._notify()
        finally:
            self._end()

    def _notify(self) -> None:
        with self._lock:
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    def _end(self) -> None:
        with self._lock:
            self._ended = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(_set_done, waiter)

    # ------------------------------------------------------------------ loop side

    def get_nowait(self) -> ReadBatch | None:
        """The oldest queued batch, or None when none is queued (never waits)."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    async def get(self) -> ReadBatch | None:
        """The oldest batch, waiting for one; None once the stream has ended and the queue is empty."""
        while True:
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                if self._ended:
                    return None
                waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None

    @property
    def queued(self) -> int:
        """Reads made and not yet taken by the loop."""
        return len(self._queue)

    @property
    def ended(self) -> bool:
        """True once the thread has stopped reading (EOF, error or :meth:`stop`)."""
        return self._ended

    def quiet_ns(self) -> int:
        """How long (ns) the thread has watched the port without a byte, on its own clock.

        It is the thread's last look at the port minus its last read: a thread that did not get to run (a
        late process) has not looked, so the time it was away is not counted as silence.
        """
        return max(0, self._last_look_ns - self._last_read_ns)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread and wait for it (the caller closes the port afterwards, never before)."""
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        if self._thread.is_alive():  # pragma: no cover - a read that never returns
            log.warning("%s: reader thread did not stop in %.1f s", self._name, timeout_s)
            return
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._stop_r = self._stop_w = -1


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
