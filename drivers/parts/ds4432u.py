"""DS4432U current DAC trimming the Bitaxe Ultra 201-205 core buck (I2C 0x48, OUT0 register 0xF8).

The trim byte is bit 7 = sink (lowers the voltage), bits 6-0 = magnitude. Code <-> volts use ESP-Miner's
transfer function and board constants (``main/power/DS4432U.c``: VFB 0.6 V of the TPS40305, RA 4750 ohm,
RB 3320 ohm, full-scale 98.921 uA over 127 steps: 3.700 mV a step, 1.4584 V at zero current).

Rounding: the magnitude rounds so the applied voltage never exceeds the one asked for (sink: up, as the
firmware's ``ceil``; source: down, where the firmware's ``ceil`` would overshoot). ESP-Miner's preset
table (1.10 V -> 0xE1 ... 1.30 V -> 0xAB) comes out of the same function.
"""

from __future__ import annotations

import math

from drivers.i2c import I2CBus, read_u8, write_u8
from drivers.parts.errors import PowerError
from drivers.parts.pmbus import f32

ADDR = 0x48
REG_OUT0 = 0xF8
#: Board constants from ESP-Miner DS4432U.c (TPS40305_VFB, BITAXE_RA, BITAXE_RB, BITAXE_IFS).
VFB_V = 0.6
RA_OHM = 4750.0
RB_OHM = 3320.0
IFS_A = 0.000098921
STEPS = 127
#: Core voltage with the DAC at zero current (V): VFB * (1 + RA / RB).
V_ZERO = VFB_V * (1.0 + RA_OHM / RB_OHM)
#: Volts per DAC step.
V_PER_STEP = RA_OHM * IFS_A / STEPS
#: Driver hard range (V): the project's hard range (docs/drivers.md "Where each limit comes from").
V_MIN = 1.0
V_MAX = 1.4
#: ESP-Miner's preset points (V, trim byte), pinned by the tests.
PRESETS: tuple[tuple[float, int], ...] = (
    (1.10, 0xE1),
    (1.15, 0xD4),
    (1.20, 0xC6),
    (1.25, 0xB9),
    (1.30, 0xAB),
)


def _signed(code: int) -> int:
    """Trim byte -> signed steps (+ sink, - source)."""
    return code & 0x7F if code & 0x80 else -(code & 0x7F)


def voltage_for_code(code: int) -> float:
    """Core voltage (V) a trim byte applies (ESP-Miner's transfer function solved for the output)."""
    return VFB_V + RA_OHM * (VFB_V / RB_OHM - _signed(code) * IFS_A / STEPS)


def code_for_voltage(volts: float) -> int:
    """Trim byte for ``volts`` (V), applying at most ``volts``; :class:`PowerError` outside the hard range."""
    if not V_MIN - 1e-9 <= volts <= V_MAX + 1e-9:
        raise PowerError(f"DS4432U core voltage {volts:.3f} V outside {V_MIN:.2f}-{V_MAX:.2f} V")
    # the firmware's expression, in its precision: double arithmetic on a float input, stored as float
    x = f32((VFB_V / RB_OHM - (f32(volts) - VFB_V) / RA_OHM) / IFS_A * STEPS)
    steps = math.ceil(x) if x > 0 else -math.floor(-x)  # sink: more current; source: less
    code = (0x80 | steps) if steps > 0 else -steps
    while voltage_for_code(code) > volts and _signed(code) < STEPS:  # float32 let it land a hair above
        s = _signed(code) + 1
        code = (0x80 | s) if s > 0 else -s
    if abs(_signed(code)) > STEPS:  # pragma: no cover - the hard range is well inside the DAC's
        raise PowerError(f"DS4432U cannot reach {volts:.3f} V")
    return code


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
