"""EMC2101 fan controller and temperature sensor (I2C 0x4C).

Internal temperature in register 0x00 (signed deg C); the external diode (on the ASIC) as 11 bits: high byte
0x01 (signed) and bits 7-5 of 0x10, in 1/8 deg C; fan duty register 0x4C takes 0-63.

Start-up (:meth:`EMC2101.configure`) as ESP-Miner's ``EMC2101_init`` (``main/thermal/EMC2101.c``): 0x03 = 0x04
(pin 6 is the TACH input), 0x4A = 0x23 (fan configuration: the duty register drives the fan), and on the
Gamma 600 series (``thermal.c``, ``device_config.h``) ideality 0x17 = 0x24 and beta compensation 0x18 = 0x00;
every register is read back and a mismatch raises :class:`PowerError` naming it.
"""

from __future__ import annotations

from drivers.i2c import I2CBus, read_u8, write_u8
from drivers.parts.errors import PowerError

ADDR = 0x4C
REG_INTERNAL_TEMP = 0x00
REG_EXTERNAL_HIGH = 0x01
REG_EXTERNAL_LOW = 0x10
REG_TACH_LOW = 0x46
REG_TACH_HIGH = 0x47
REG_FAN_SETTING = 0x4C
REG_CONFIG = 0x03
REG_FAN_CONFIG = 0x4A
REG_IDEALITY = 0x17
REG_BETA = 0x18
#: EMC2101_init's values: 0x03 = 0x04 (TACH input), 0x4A = 0b00100011.
CONFIG_TACH_INPUT = 0x04
FAN_CONFIG = 0x23
FAN_MAX = 63
#: Tach count -> RPM numerator (EMC2101 datasheet: RPM = 5,400,000 / count).
TACH_CONSTANT = 5_400_000


def duty_for_percent(pct: float) -> int:
    """Fan register value (0-63) for ``pct`` (0-100 %); ValueError outside."""
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"fan duty must be 0-100 %, got {pct}")
    return round(pct * FAN_MAX / 100.0)


def percent_for_duty(value: int) -> float:
    """Percent (0-100) for a fan register value (clamped to 63)."""
    return min(value, FAN_MAX) * 100.0 / FAN_MAX


def external_temp(high: int, low: int) -> float:
    """External diode temperature (deg C) from the high (signed) and low (bits 7-5) bytes."""
    raw = (high << 3) | (low >> 5)
    if raw & 0x400:
        raw -= 0x800
    return raw / 8.0


class EMC2101:
    """The controller on ``bus`` at ``addr``."""

    def __init__(self, bus: I2CBus, addr: int = ADDR) -> None:
        self.bus = bus
        self.addr = addr

    async def configure(self, ideality: int | None = None, beta: int | None = None) -> list[tuple[int, int]]:
        """Write ESP-Miner's start-up registers (plus ideality/beta when given), read each back.

        Returns the ``(register, value)`` pairs written; :class:`PowerError` names a register that does not
        read back what was written.
        """
        writes = [(REG_CONFIG, CONFIG_TACH_INPUT), (REG_FAN_CONFIG, FAN_CONFIG)]
        if ideality is not None:
            writes += [(REG_IDEALITY, ideality), (REG_BETA, 0x00 if beta is None else beta)]
        for reg, value in writes:
            await write_u8(self.bus, self.addr, reg, value)
        for reg, value in writes:
            got = await read_u8(self.bus, self.addr, reg)
            if got != value:
                raise PowerError(
                    f"EMC2101 start-up configuration did not verify: register 0x{reg:02X} wrote"
                    f" 0x{value:02X}, read back 0x{got:02X}"
                )
        return writes

    async def read_internal_temp(self) -> float:
        """Board (internal) temperature, deg C."""
        v = await read_u8(self.bus, self.addr, REG_INTERNAL_TEMP)
        return float(v - 256 if v & 0x80 else v)

    async def read_external_temp(self) -> float:
        """External diode (chip) temperature, deg C, 1/8 deg resolution (high byte read first)."""
        high = await read_u8(self.bus, self.addr, REG_EXTERNAL_HIGH)
        low = await read_u8(self.bus, self.addr, REG_EXTERNAL_LOW)
        return external_temp(high, low)

    async def set_fan_percent(self, pct: float) -> int:
        """Set the fan duty (0-100 %); returns the register value written."""
        value = duty_for_percent(pct)
        await write_u8(self.bus, self.addr, REG_FAN_SETTING, value)
        return value

    async def read_fan_percent(self) -> float:
        """The fan duty setting, %."""
        return percent_for_duty(await read_u8(self.bus, self.addr, REG_FAN_SETTING))

    async def read_fan_rpm(self) -> float:
        """Fan speed from the tach count (low byte first), RPM; 0.0 when stalled (count 0xFFFF)."""
        low = await read_u8(self.bus, self.addr, REG_TACH_LOW)
        high = await read_u8(self.bus, self.addr, REG_TACH_HIGH)
        count = high << 8 | low
        return 0.0 if count in (0, 0xFFFF) else TACH_CONSTANT / count
