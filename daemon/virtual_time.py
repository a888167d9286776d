"""An asyncio event loop on emulated time, for the asic substrate over an in-process emulated board.

:class:`VirtualTimeLoop` is a stock selector event loop whose ``time()`` is a counter (integer ns) instead of
the host clock. When the loop has nothing ready to run and no I/O is pending, it does not sleep: it jumps the
counter to its next timer. Every ``asyncio.sleep``, ``wait_for`` timeout and ``call_at`` therefore lands at
its exact emulated time, whatever the host's load, and runs with equal inputs (seeds, schedule) give equal
results. This is only sound when every byte on the data path moves inside the loop (no pty, no reader
thread): the in-process board (``simulator.inproc_board``) and loopback transports; real file descriptors
would let time jump past bytes still in the kernel.

Between calls from other threads the loop is *frozen* (:attr:`VirtualTimeLoop.frozen`): time stands still
and the loop blocks on its self-pipe, so the emulated board does not run on while the caller prepares the
next schedule. :func:`unfrozen` runs one coroutine with time flowing.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

#: Unix time (s) at emulated time 0 (2026-01-01 UTC): a wall clock on emulated time (the jobs' ntime), so
#: the header the emulated chips hash, and with it every nonce, core id and share difficulty, is a function
#: of the seeds and not of the day the run happened.
EMULATED_EPOCH_S = 1_767_225_600


class _VirtualSelector(selectors.BaseSelector):
    """The default selector, polled without blocking; the owner's clock jumps instead of waiting."""

    def __init__(self) -> None:
        self._inner = selectors.DefaultSelector()
        self.owner: VirtualTimeLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.owner
        if loop is None or timeout is None:
            return self._inner.select(timeout)  # nothing scheduled at all: wait for I/O or another thread
        if loop.frozen:  # time stands still: poll, or wait for another thread's call (self-pipe)
            return self._inner.select(0 if timeout <= 0 else None)
        ready = self._inner.select(0)
        if ready or timeout <= 0:
            return ready
        loop.advance(timeout)  # idle until the next timer: jump there
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock is emulated (see the module docstring); starts frozen at 0 ns."""

    def __init__(self) -> None:
        sel = _VirtualSelector()
        super().__init__(selector=sel)
        sel.owner = self
        self._now_ns = 0
        #: While True, time stands still and the loop only serves calls from other threads.
        self.frozen = True

    def time(self) -> float:
        """Emulated seconds since the loop was made."""
        return self._now_ns / 1e9

    def now_ns(self) -> int:
        """Emulated ns since the loop was made (the clock the daemon's components are given)."""
        return self._now_ns

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (>= 0), rounded to whole ns (a timer within half a ns of the
        new time is due: asyncio fires timers up to its clock resolution, 1 ns, ahead)."""
        self._now_ns += max(0, round(seconds * 1e9))


class VirtualClock:
    """The daemon's clock (``clock()`` in ns, ``await clock.sleep(s)``) on a :class:`VirtualTimeLoop`."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def __call__(self) -> int:
        return self._loop.now_ns()

    async def sleep(self, s: float) -> None:
        await asyncio.sleep(max(0.0, s))

    def unix_s(self) -> float:
        """A wall clock (unix s) on emulated time: :data:`EMULATED_EPOCH_S` at emulated time 0."""
        return EMULATED_EPOCH_S + self._loop.now_ns() / 1e9


async def unfrozen(loop: VirtualTimeLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` with emulated time flowing on ``loop``; freeze it again afterwards, even on error."""
    loop.frozen = False
    try:
        return await coro
    finally:
        loop.frozen = True
