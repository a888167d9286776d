"""In-process loopback pair: two connected :class:`LoopbackTransport` ends for unit tests.

Each ``write`` on one end arrives as exactly one :class:`ReadBatch` on the other (stamped with the receiving
end's clock), so tests control read boundaries; :meth:`LoopbackTransport.inject` delivers arbitrary batches.
Closing either end ends both (like a pty hang-up).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from drivers.transport.base import ReadBatch, TransportClosed, TransportError

#: Host UART rate at power-on (docs/protocol.md: hosts open at 115200).
DEFAULT_BAUD = 115_200


class LoopbackTransport:
    """One end of an in-process byte pipe; make a connected pair with :func:`loopback_pair`."""

    def __init__(
        self,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        baud: int = DEFAULT_BAUD,
        has_reset: bool = False,
        name: str = "loopback",
    ) -> None:
        self.name = name
        self._clock = clock
        self._baud = baud
        self._has_reset = has_reset
        self._queue: asyncio.Queue[ReadBatch | None] = asyncio.Queue()
        self._next_id = 0
        self._open = False
        self._closed = False
        self.peer: LoopbackTransport | None = None
        #: History of reset line levels set through :meth:`set_reset` (True = held in reset).
        self.reset_history: list[bool] = []
        #: Called with the new baud whenever :meth:`set_baud` changes it.
        self.on_baud: Callable[[int], None] | None = None
        #: Called with the asserted flag whenever :meth:`set_reset` is used.
        self.on_reset: Callable[[bool], None] | None = None
        #: Every byte string written through this end, in order.
        self.written: list[bytes] = []

    @property
    def baud(self) -> int:
        return self._baud

    @property
    def is_open(self) -> bool:
        return self._open and not self._closed

    @property
    def has_reset(self) -> bool:
        return self._has_reset

    async def open(self) -> None:
        if self._closed:
            raise TransportError(f"{self.name}: closed loopback cannot be reopened")
        self._open = True

    async def close(self) -> None:
        self._shutdown()
        if self.peer is not None:
            self.peer._shutdown()

    def _shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def write(self, data: bytes) -> None:
        if self._closed or self.peer is None:
            raise TransportClosed(f"{self.name}: write on a closed loopback")
        self.written.append(bytes(data))
        if data:
            self.peer.inject(bytes(data))

    def inject(self, data: bytes, t_host_ns: int | None = None) -> ReadBatch:
        """Deliver ``data`` as one read batch on this end (time from the clock unless given)."""
        batch = ReadBatch(data, self._clock() if t_host_ns is None else t_host_ns, self._next_id)
        self._next_id += 1
        if not self._closed:
            self._queue.put_nowait(batch)
        return batch

    async def read(self) -> ReadBatch:
        if self._closed and self._queue.empty():
            raise TransportClosed(f"{self.name}: closed")
        batch = await self._queue.get()
        if batch is None:
            self._queue.put_nowait(None)  # keep later readers failing too
            raise TransportClosed(f"{self.name}: closed")
        return batch

    async def set_baud(self, baud: int) -> None:
        if baud <= 0:
            raise ValueError(f"baud must be positive, got {baud}")
        self._baud = baud
        if self.on_baud is not None:
            self.on_baud(baud)

    async def set_reset(self, asserted: bool) -> None:
        if not self._has_reset:
            raise TransportError(f"{self.name}: no reset line")
        self.reset_history.append(asserted)
        if self.on_reset is not None:
            self.on_reset(asserted)


def loopback_pair(
    *,
    clock: Callable[[], int] = time.monotonic_ns,
    baud: int = DEFAULT_BAUD,
    has_reset: bool = False,
) -> tuple[LoopbackTransport, LoopbackTransport]:
    """``(host, device)`` ends wired to each other, both open; ``has_reset`` applies to the host end."""
    host = LoopbackTransport(clock=clock, baud=baud, has_reset=has_reset, name="loopback-host")
    device = LoopbackTransport(clock=clock, baud=baud, name="loopback-device")
    host.peer, device.peer = device, host
    host._open = device._open = True
    return host, device
