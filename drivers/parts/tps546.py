"""TPS546D24A PMBus buck (I2C 0x24) on Bitaxe Ultra 207, Supra 402+ and Gamma.

VOUT_COMMAND and READ_VOUT use ULINEAR16 with the VOUT_MODE exponent; READ_VIN, READ_IOUT and
READ_TEMPERATURE_1 are LINEAR11 (PMBus spec part II). PMBus words are little-endian.
"""

from __future__ import annotations

from drivers.i2c import I2CBus, read_u8, read_u16, write_u8, write_u16
from drivers.parts.errors import PowerError

ADDR = 0x24
OPERATION = 0x01
VOUT_MODE = 0x20
VOUT_COMMAND = 0x21
STATUS_WORD = 0x79
READ_VIN = 0x88
READ_VOUT = 0x8B
READ_IOUT = 0x8C
READ_TEMPERATURE_1 = 0x8D
OPERATION_ON = 0x80
OPERATION_OFF = 0x00
#: Hard core-voltage limits (V): a public BM1366 sweep tool's 1000-1400 mV (bm1366.md "Safety figures").
VOUT_MIN = 1.0
VOUT_MAX = 1.4

#: STATUS_WORD bits (PMBus): name by bit.
STATUS_BITS: dict[int, str] = {
    15: "VOUT",
    14: "IOUT/POUT",
    13: "INPUT",
    12: "MFR",
    11: "POWER_GOOD#",
    6: "OFF",
    5: "VOUT_OV",
    4: "IOUT_OC",
    3: "VIN_UV",
    2: "TEMPERATURE",
    1: "CML",
}


def decode_linear11(word: int) -> float:
    """PMBus LINEAR11: 5-bit two's-complement exponent (bits 15-11), 11-bit two's-complement mantissa."""
    exp = (word >> 11) & 0x1F
    mant = word & 0x7FF
    if exp > 15:
        exp -= 32
    if mant > 1023:
        mant -= 2048
    return mant * 2.0**exp


def encode_linear11(value: float) -> int:
    """LINEAR11 word for ``value`` with the finest exponent that fits the mantissa."""
    for exp in range(-16, 16):
        mant = round(value / 2.0**exp)
        if -1024 <= mant <= 1023:
            return ((exp & 0x1F) << 11) | (mant & 0x7FF)
    raise ValueError(f"{value} does not fit LINEAR11")


def vout_exponent(mode: int) -> int:
    """Exponent of a VOUT_MODE byte in linear mode (bits 4-0, two's complement); ValueError otherwise."""
    if mode >> 5 != 0:
        raise ValueError(f"VOUT_MODE 0x{mode:02X} is not linear mode")
    e = mode & 0x1F
    return e - 32 if e > 15 else e


def status_flags(word: int) -> list[str]:
    """Names of the STATUS_WORD bits set in ``word``."""
    return [name for bit, name in STATUS_BITS.items() if word >> bit & 1]


class TPS546:
    """The regulator on ``bus``; :meth:`set_vout` refuses anything outside ``[vmin, vmax]``."""

    def __init__(self, bus: I2CBus, addr: int = ADDR, vmin: float = VOUT_MIN, vmax: float = VOUT_MAX) -> None:
        self.bus = bus
        self.addr = addr
        self.vmin = vmin
        self.vmax = vmax
        self._exp: int | None = None

    async def exponent(self) -> int:
        """VOUT_MODE exponent (read once, then cached)."""
        if self._exp is None:
            self._exp = vout_exponent(await read_u8(self.bus, self.addr, VOUT_MODE))
        return self._exp

    async def set_vout(self, volts: float) -> None:
        """Range-check, program VOUT_COMMAND (V) and switch the output on."""
        if not self.vmin <= volts <= self.vmax:
            raise PowerError(f"TPS546 core voltage {volts:.3f} V outside {self.vmin:.2f}-{self.vmax:.2f} V")
        exp = await self.exponent()
        await write_u16(self.bus, self.addr, VOUT_COMMAND, round(volts / 2.0**exp))
        await self.set_enabled(True)

    async def set_enabled(self, on: bool) -> None:
        """OPERATION on (0x80) or off (0x00)."""
        await write_u8(self.bus, self.addr, OPERATION, OPERATION_ON if on else OPERATION_OFF)

    async def read_vout_command(self) -> float:
        """The programmed output voltage (V)."""
        return await self._ulinear16(VOUT_COMMAND)

    async def _ulinear16(self, reg: int) -> float:
        exp = await self.exponent()
        return await read_u16(self.bus, self.addr, reg) * 2.0**exp

    async def _linear11(self, reg: int) -> float:
        return decode_linear11(await read_u16(self.bus, self.addr, reg))

    async def read_vin(self) -> float:
        """Input voltage (V)."""
        return await self._linear11(READ_VIN)

    async def read_vout(self) -> float:
        """Measured output voltage (V; ULINEAR16 with the VOUT_MODE exponent)."""
        return await self._ulinear16(READ_VOUT)

    async def read_iout(self) -> float:
        """Output current (A)."""
        return await self._linear11(READ_IOUT)

    async def read_temperature(self) -> float:
        """Regulator temperature (deg C)."""
        return await self._linear11(READ_TEMPERATURE_1)

    async def read_status(self) -> int:
        """STATUS_WORD (see :func:`status_flags`)."""
        return await read_u16(self.bus, self.addr, STATUS_WORD)
