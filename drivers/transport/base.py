"""The async byte-transport seam shared by real serial ports, ptys and the in-process loopback.

A transport delivers whatever each OS read returned as one :class:`ReadBatch`, stamped with the injected
clock (``time.monotonic_ns`` by default) and a monotonically increasing read id. Business code never reaches
into the underlying port; pin control (ASIC reset on DTR/RTS) is optional and stays inside the transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: Bits on the wire per byte for 8N1 framing (start + 8 data + stop).
BITS_PER_BYTE = 10


class TransportError(OSError):
    """The link failed (port vanished, write failed); the reconnector handles it."""


class TransportClosed(TransportError):
    """The transport is closed (by us or by the peer); no more reads will arrive."""


@dataclass(frozen=True, slots=True)
class ReadBatch:
    """Bytes returned by one OS read, ``t_host_ns`` when the read returned (injected clock, ns)."""

    data: bytes
    t_host_ns: int
    read_id: int


def wire_time_ns(nbytes: int, baud: int) -> int:
    """Time (ns) ``nbytes`` take on an 8N1 line at ``baud`` (10 bits per byte)."""
    return nbytes * BITS_PER_BYTE * 1_000_000_000 // baud


@runtime_checkable
class Transport(Protocol):
    """Async byte pipe: open, close, write, read batches, baud; optional reset pin."""

    @property
    def baud(self) -> int:
        """Current host-side baud rate (bits/s)."""
        ...

    @property
    def is_open(self) -> bool: ...

    async def open(self) -> None:
        """Open the link; raises :class:`TransportError` when it cannot."""
        ...

    async def close(self) -> None:
        """Close the link; pending and later :meth:`read` calls raise :class:`TransportClosed`."""
        ...

    async def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (returns once the OS accepted it)."""
        ...

    async def read(self) -> ReadBatch:
        """Next batch of received bytes; raises :class:`TransportClosed` after close or loss."""
        ...

    async def set_baud(self, baud: int) -> None:
        """Switch the host side to ``baud`` after everything written so far has left."""
        ...


@runtime_checkable
class ResetLine(Protocol):
    """Something that can hold the ASIC chain in reset (a serial pin, or a bitaxe-raw GPIO)."""

    @property
    def has_reset(self) -> bool:
        """True when this object can actually drive the reset line."""
        ...

    async def set_reset(self, asserted: bool) -> None:
        """``asserted=True`` holds the chips in reset (line low); False releases them."""
        ...
