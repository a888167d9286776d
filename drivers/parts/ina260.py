"""INA260 power monitor (I2C 0x40) on the Bitaxe Ultra 201-205 input: big-endian 16-bit registers."""

from __future__ import annotations

from drivers.i2c import I2CBus, read_u16

ADDR = 0x40
REG_CURRENT = 0x01
REG_BUS_VOLTAGE = 0x02
REG_POWER = 0x03
#: LSB sizes (INA260 datasheet, docs/protocol.md): current 1.25 mA, bus voltage 1.25 mV, power 10 mW.
CURRENT_LSB_A = 1.25e-3
VOLTAGE_LSB_V = 1.25e-3
POWER_LSB_W = 10e-3


class INA260:
    """The monitor on ``bus`` at ``addr``."""

    def __init__(self, bus: I2CBus, addr: int = ADDR) -> None:
        self.bus = bus
        self.addr = addr

    async def read_current(self) -> float:
        """Current (A), read signed: the register is two's complement (INA260 datasheet). ESP-Miner reads it
        unsigned (``INA260.c``), so a reading a few LSB below zero (offset noise at idle) shows ~81.9 A there;
        the two agree on every positive current. Used for neither safety nor telemetry (power is read apart).
        """
        raw = await read_u16(self.bus, self.addr, REG_CURRENT, "big")
        return (raw - 0x10000 if raw & 0x8000 else raw) * CURRENT_LSB_A

    async def read_voltage(self) -> float:
        """Bus voltage (V)."""
        return await read_u16(self.bus, self.addr, REG_BUS_VOLTAGE, "big") * VOLTAGE_LSB_V

    async def read_power(self) -> float:
        """Power (W)."""
        return await read_u16(self.bus, self.addr, REG_POWER, "big") * POWER_LSB_W
