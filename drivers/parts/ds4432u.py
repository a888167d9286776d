"""DS4432U current DAC trimming the Bitaxe Ultra 201-205 core buck (I2C 0x48, OUT0 register 0xF8).

The trim byte (bit 7 = sink, bits 6-0 magnitude) for a core voltage comes from ESP-Miner's table in
``bm1366.md``; values in between are interpolated linearly on the magnitude, values outside are refused.
"""

from __future__ import annotations

import itertools

from drivers.i2c import I2CBus, read_u8, write_u8
from drivers.parts.errors import PowerError

ADDR = 0x48
REG_OUT0 = 0xF8
#: (core volts, trim byte) from ESP-Miner via bm1366.md; the buck's usable range on the Ultra.
VOLTAGE_TABLE: tuple[tuple[float, int], ...] = (
    (1.10, 0xE1),
    (1.15, 0xD4),
    (1.20, 0xC6),
    (1.25, 0xB9),
    (1.30, 0xAB),
)
V_MIN = VOLTAGE_TABLE[0][0]
V_MAX = VOLTAGE_TABLE[-1][0]


def _signed(code: int) -> int:
    """Trim byte -> signed sink(-)/source(+) steps."""
    return -(code & 0x7F) if code & 0x80 else code & 0x7F


def _byte(steps: int) -> int:
    return (0x80 | -steps) if steps < 0 else steps


def code_for_voltage(volts: float) -> int:
    """Trim byte for ``volts`` (V), interpolated in the table; :class:`PowerError` outside 1.10-1.30 V."""
    if not V_MIN - 1e-9 <= volts <= V_MAX + 1e-9:
        raise PowerError(f"DS4432U core voltage {volts:.3f} V outside {V_MIN:.2f}-{V_MAX:.2f} V")
    for (v0, c0), (v1, c1) in itertools.pairwise(VOLTAGE_TABLE):
        if volts <= v1 + 1e-9:
            s0, s1 = _signed(c0), _signed(c1)
            frac = (volts - v0) / (v1 - v0)
            return _byte(round(s0 + (s1 - s0) * frac))
    return VOLTAGE_TABLE[-1][1]


def voltage_for_code(code: int) -> float:
    """Core voltage (V) a trim byte stands for (linear within the table; PowerError outside it)."""
    s = _signed(code)
    for (v0, c0), (v1, c1) in itertools.pairwise(VOLTAGE_TABLE):
        s0, s1 = _signed(c0), _signed(c1)
        if min(s0, s1) <= s <= max(s0, s1):
            return v0 + (v1 - v0) * (s - s0) / (s1 - s0)
    raise PowerError(f"DS4432U code 0x{code:02X} is outside the calibrated table")


class DS4432U:
    """The DAC on ``bus`` at ``addr``."""

    def __init__(self, bus: I2CBus, addr: int = ADDR) -> None:
        self.bus = bus
        self.addr = addr

    async def set_voltage(self, volts: float) -> int:
        """Range-check and set the core voltage (V); returns the trim byte written."""
        code = code_for_voltage(volts)
        await write_u8(self.bus, self.addr, REG_OUT0, code)
        return code

    async def read_code(self) -> int:
        """The trim byte in OUT0."""
        return await read_u8(self.bus, self.addr, REG_OUT0)

    async def read_voltage(self) -> float:
        """The core voltage setpoint the current trim byte stands for (V)."""
        return voltage_for_code(await self.read_code())
