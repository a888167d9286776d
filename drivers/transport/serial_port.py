"""Serial transport for real ports (``/dev/ttyACM0``, ``/dev/serial/by-id/...``) and pty paths.

Uses pyserial to open and configure the port and a dedicated reader thread
(:class:`drivers.transport.reader_thread.ReaderThread`) on its file descriptor, so each OS read becomes one
:class:`ReadBatch` stamped on that thread the moment the read returned, and the port is drained on time even
when the event loop is late. Writes stay on the loop. ptys refuse modem-line ioctls on some systems: pin
control is optional and a refusal only disables it (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Literal

import serial

from drivers.transport.base import ReadBatch, TransportClosed, TransportError
from drivers.transport.reader_thread import READ_CHUNK, ReaderThread

log = logging.getLogger(__name__)

#: Host UART rate at power-on (docs/protocol.md: chips talk 115,741 baud at reset, hosts open at 115200).
DEFAULT_BAUD = 115_200
__all__ = ["DEFAULT_BAUD", "READ_CHUNK", "ResetPin", "SerialTransport"]

ResetPin = Literal["dtr", "rts"]


class SerialTransport:
    """Async serial port over pyserial, read by its own thread (see the module docstring).

    ``reset_pin`` names the modem line wired to the ASIC reset (None: no reset line). ``reset_active_high``
    says whether asserting the pin (``True`` in pyserial) holds the chips in reset.
    """

    def __init__(
        self,
        path: str,
        *,
        baud: int = DEFAULT_BAUD,
        clock: Callable[[], int] = time.monotonic_ns,
        reset_pin: ResetPin | None = None,
        reset_active_high: bool = True,
        serial_factory: Callable[..., serial.Serial] = serial.Serial,
    ) -> None:
        self.path = path
        self._baud = baud
        self._clock = clock
        self._reset_pin = reset_pin
        self._reset_active_high = reset_active_high
        self._serial_factory = serial_factory
        self._port: serial.Serial | None = None
        self._fd = -1
        self._reader: ReaderThread | None = None
        self._next_id = 0
        self._closed = True
        self._pins_ok = reset_pin is not None

    @property
    def baud(self) -> int:
        return self._baud

    @property
    def is_open(self) -> bool:
        return not self._closed

    @property
    def has_reset(self) -> bool:
        return self._pins_ok

    async def open(self) -> None:
        if not self._closed:
            return
        try:
            port = self._serial_factory(
                port=None, baudrate=self._baud, timeout=0, write_timeout=0, rtscts=False, dsrdtr=False
            )
            port.port = self.path
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"cannot open {self.path}: {exc}") from exc
        self._port = port
        self._fd = port.fileno()
        os.set_blocking(self._fd, False)
        self._closed = False
        self._reader = ReaderThread(
            self._fd, asyncio.get_running_loop(), self._clock, name=self.path, first_id=self._next_id
        )
        self._reader.start()

    def quiet_ns(self) -> int:
        """How long (ns) the reader thread has watched the port without a byte (its own clock; 0 closed)."""
        return self._reader.quiet_ns() if self._reader is not None else 0

    def _lost(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._detach()

    def _detach(self) -> None:
        if self._reader is not None:
            self._reader.stop()  # before the port closes: the thread must not poll a closed descriptor
            self._next_id = self._reader.next_id
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()
        self._port = None
        self._fd = -1

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._detach()

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise TransportClosed(f"{self.path}: write on a closed port")
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                await self._writable()
                continue
            except OSError as exc:
                self._lost()
                raise TransportClosed(f"{self.path}: write failed: {exc}") from exc
            view = view[n:]

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_writer(self._fd, ready)
        try:
            await fut
        finally:
            loop.remove_writer(self._fd)

    @property
    def queued_reads(self) -> int:
        """Reads the reader thread has made that the loop has not taken yet."""
        return self._reader.queued if self._reader is not None else 0

    def read_nowait(self) -> ReadBatch | None:
        """The oldest batch the reader thread has already read, or None (never waits)."""
        return self._reader.get_nowait() if self._reader is not None else None

    async def read(self) -> ReadBatch:
        reader = self._reader
        batch = None
        if reader is not None:
            # after a close, the reads the thread made before it stopped are still delivered
            batch = reader.get_nowait() if self._closed else await reader.get()
        if batch is None:
            if not self._closed:
                self._lost()  # EOF or a read error on the thread
            raise TransportClosed(f"{self.path}: closed")
        return batch

    async def set_baud(self, baud: int) -> None:
        if baud <= 0:
            raise ValueError(f"baud must be positive, got {baud}")
        if self._port is not None:
            try:
                self._port.flush()  # tcdrain: the last command must leave at the old rate
                self._port.baudrate = baud
            except (serial.SerialException, OSError, ValueError) as exc:
                # ptys may refuse non-standard rates; the emulator follows the chip register instead.
                log.info("%s: host baud %d not applied (%s); kept for timing", self.path, baud, exc)
        self._baud = baud

    async def set_reset(self, asserted: bool) -> None:
        if self._port is None or not self._pins_ok or self._reset_pin is None:
            raise TransportError(f"{self.path}: no usable reset line")
        level = asserted if self._reset_active_high else not asserted
        try:
            setattr(self._port, self._reset_pin, level)
        except (serial.SerialException, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.ENOTTY, errno.EINVAL, None):
                raise TransportError(f"{self.path}: reset pin failed: {exc}") from exc
            log.warning("%s: %s pin refused (%s); reset line disabled", self.path, self._reset_pin, exc)
            self._pins_ok = False
            raise TransportError(f"{self.path}: reset pin refused: {exc}") from exc
