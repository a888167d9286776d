"""The chain's background reader: transport reads -> nonce queue and register replies, through the one
decoder of the hot path (:class:`drivers.read_decoder.ReadDecoder`), one read at a time.

Nonce replies go to a bounded queue (oldest dropped and counted when nobody reads them); register replies go
to an unbounded queue that :class:`drivers.chain.Chain` drains before each register access. Host frames
echoed back by the link are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from drivers.frames import NonceReply, RegisterReply
from drivers.read_decoder import DecodedReads, ReadDecoder
from drivers.transport.base import Transport, TransportClosed, TransportError

log = logging.getLogger(__name__)


class ReaderClosed(Exception):
    """The transport ended: no more nonces will come."""


@dataclass(frozen=True, slots=True)
class TimedFrame:
    """A nonce reply with its read's raw time ``t_ns``, the ``t_wire_ns`` estimate and the read id
    (docs/recording-format.md; ns on the transport's clock)."""

    frame: NonceReply
    t_ns: int
    t_wire_ns: int
    read_id: int


class ChainReader:
    """Reads ``transport`` on a task between :meth:`start` and :meth:`stop`; restartable."""

    def __init__(self, transport: Transport, nonce_queue_max: int) -> None:
        self.transport = transport
        self._decoder = ReadDecoder()
        self._nonces: asyncio.Queue[TimedFrame | None] = asyncio.Queue()  # capped in _dispatch
        self._nonce_max = nonce_queue_max
        self.registers: asyncio.Queue[RegisterReply] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: Nonces dropped because the queue was full.
        self.nonces_dropped = 0
        self.closed = asyncio.Event()

    async def start(self) -> None:
        """Start (or restart) the reader task (the transport must be open)."""
        if self._task is None:
            if self.closed.is_set():  # restarted after stop(): forget the end-of-stream marker
                self.closed.clear()
                kept = self.drain_nonces()
                self._nonces = asyncio.Queue()
                for tf in kept:
                    self._nonces.put_nowait(tf)
            self._task = asyncio.create_task(self._read_loop(), name="chain-reader")

    async def stop(self) -> None:
        """Stop the reader task (the transport stays open)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    batch = await self.transport.read()
                except TransportClosed:
                    return
                self._dispatch(self._decoder.decode([batch], self.transport.baud))
        except TransportError as exc:
            log.warning("chain reader stopped: %s", exc)
        finally:
            self.closed.set()
            self._nonces.put_nowait(None)

    def _dispatch(self, dec: DecodedReads) -> None:
        r = dec.registers
        for value, addr, reg in zip(r.value.tolist(), r.chip_addr.tolist(), r.reg.tolist(), strict=True):
            self.registers.put_nowait(RegisterReply(value, addr, reg))
        n = dec.nonces
        q = self._nonces
        for row in zip(
            n.nonce.tolist(),
            n.b6.tolist(),
            n.b7.tolist(),
            n.version_bits.tolist(),
            n.t_ns.tolist(),
            n.t_wire_ns.tolist(),
            n.read_id.tolist(),
            strict=True,
        ):
            if q.qsize() >= self._nonce_max:
                q.get_nowait()
                self.nonces_dropped += 1
            q.put_nowait(TimedFrame(NonceReply(*row[:4]), row[4], row[5], row[6]))

    async def next_nonce(self, timeout_s: float | None = None) -> TimedFrame:
        """The next nonce reply; TimeoutError after ``timeout_s``, :class:`ReaderClosed` when closed."""
        item = await asyncio.wait_for(self._nonces.get(), timeout_s)
        if item is None:
            self._nonces.put_nowait(None)
            raise ReaderClosed("chain transport closed")
        return item

    async def nonces(self) -> AsyncIterator[TimedFrame]:
        """Yield nonce replies until the transport closes."""
        while True:
            try:
                yield await self.next_nonce()
            except ReaderClosed:
                return

    def drain_nonces(self) -> list[TimedFrame]:
        """Every nonce waiting now, without blocking."""
        out: list[TimedFrame] = []
        while not self._nonces.empty():
            item = self._nonces.get_nowait()
            if item is None:
                self._nonces.put_nowait(None)
                break
            out.append(item)
        return out

    def drain_registers(self) -> None:
        """Forget register replies nobody waited for."""
        while not self.registers.empty():
            self.registers.get_nowait()
