"""The I2C bus seam: an async ``I2CBus`` protocol plus small register helpers the part drivers share.

Implemented by :class:`drivers.bitaxe_raw.BitaxeRaw` (the USB control channel) and by test fakes. Addresses
are 7-bit; a register access is "write the register byte, then read" (repeated start).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class I2CError(IOError):
    """An I2C transaction failed (NACK/timeout, bad arguments, bus fault)."""


@runtime_checkable
class I2CBus(Protocol):
    """Async I2C master."""

    async def write(self, addr: int, data: bytes) -> None:
        """Write ``data`` to device ``addr``."""
        ...

    async def read(self, addr: int, n: int) -> bytes:
        """Read ``n`` bytes from device ``addr``."""
        ...

    async def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        """Write ``data`` then read ``n`` bytes with a repeated start."""
        ...


def check_addr(addr: int) -> None:
    """Raise :class:`I2CError` unless ``addr`` is a 7-bit address."""
    if not 0 <= addr <= 0x7F:
        raise I2CError(f"I2C address must be 7-bit (0x00-0x7F), got 0x{addr:X}")


async def read_u8(bus: I2CBus, addr: int, reg: int) -> int:
    """One byte from register ``reg``."""
    return (await bus.write_read(addr, bytes([reg]), 1))[0]


async def write_u8(bus: I2CBus, addr: int, reg: int, value: int) -> None:
    """Write one byte to register ``reg``."""
    await bus.write(addr, bytes([reg, value & 0xFF]))


async def read_u16(bus: I2CBus, addr: int, reg: int, byteorder: str = "little") -> int:
    """A 16-bit register (PMBus words are little-endian; INA260 registers big-endian)."""
    raw = await bus.write_read(addr, bytes([reg]), 2)
    return int.from_bytes(raw, "big" if byteorder == "big" else "little")


async def write_u16(bus: I2CBus, addr: int, reg: int, value: int, byteorder: str = "little") -> None:
    """Write a 16-bit register."""
    await bus.write(
        addr, bytes([reg]) + (value & 0xFFFF).to_bytes(2, "big" if byteorder == "big" else "little")
    )
