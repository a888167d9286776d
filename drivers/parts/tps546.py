"""TPS546D24A PMBus buck (I2C 0x24) on Bitaxe Ultra 207, Supra 402+ and Gamma.

VOUT_COMMAND and READ_VOUT use ULINEAR16 with the VOUT_MODE exponent; READ_VIN, READ_IOUT and
READ_TEMPERATURE_1 are LINEAR11 (PMBus spec part II). PMBus words are little-endian.
"""

from __future__ import annotations

from drivers.i2c import I2CBus, read_u8, read_u16, write_u8, write_u16
from drivers.parts import tps546_config as cfgmod
from drivers.parts.errors import PowerError
from drivers.parts.pmbus import decode_linear11 as decode_linear11  # re-exported (was defined here)
from drivers.parts.pmbus import ulinear16_from_float
from drivers.parts.tps546_config import Tps546Config

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
#: Hard core-voltage limits (V) of the driver: the project's hard range (docs/drivers.md "Where each limit
#: comes from"); the daemon's envelope (default 1.10-1.30 V, ESP-Miner's BM1366 presets) sits inside it.
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


def encode_linear11(value: float) -> int:
    """LINEAR11 word for ``value`` with the finest exponent that fits the mantissa."""
    for exp in range(-16, 16):
        mant = round(value / 2.0**exp)
        if -1024 <= mant <= 1023:
            return ((exp & 0x1F) << 11) | (mant & 0x7FF)
    raise ValueError(f"{value} does not fit LINEAR11")


def vout_exponent(mode: int) -> int:
    """Exponent of a VOUT_MODE byte in linear mode (bits 4-0, two's complement).

    Bit 7 is the relative-format flag (a TPS546D24A answers 0x97: relative, linear, exponent -9, as in
    ESP-Miner's logs): the VOUT limit commands are then factors of VOUT_COMMAND (1.25 = 125 %), which is how
    ESP-Miner's ``TPS546_INIT_VOUT_OV_FAULT_LIMIT 1.25 /* %/100 above VOUT_COMMAND */`` is meant. Bits 6-5
    must be 00 (linear); :class:`PowerError` otherwise.
    """
    if (mode >> 5) & 0b11 != 0:
        raise PowerError(f"TPS546 VOUT_MODE 0x{mode:02X} is not linear mode")
    e = mode & 0x1F
    return e - 32 if e > 15 else e


def status_flags(word: int) -> list[str]:
    """Names of the STATUS_WORD bits set in ``word``."""
    return [name for bit, name in STATUS_BITS.items() if word >> bit & 1]


STATUS_OFF = 1 << 6
STATUS_VOUT_OV = 1 << 5
STATUS_IOUT_OC = 1 << 4
STATUS_VIN_UV = 1 << 3
STATUS_TEMPERATURE = 1 << 2
#: The STATUS_WORD bits ESP-Miner's ``TPS546_check_status`` takes for a power fault (``TPS546.c``).
FAULT_MASK = STATUS_OFF | STATUS_VOUT_OV | STATUS_IOUT_OC | STATUS_VIN_UV | STATUS_TEMPERATURE
#: Latched-fault reasons in order of precedence (the first bit set names the fault).
LATCH_REASONS: tuple[tuple[int, str], ...] = (
    (STATUS_IOUT_OC, "regulator_overcurrent"),
    (STATUS_VOUT_OV, "regulator_overvoltage"),
    (STATUS_TEMPERATURE, "regulator_overtemp"),
)


def latch_fault(word: int, output_on: bool) -> str | None:
    """The named regulator fault in STATUS_WORD ``word``, or None (docs/drivers.md "Regulator faults").

    ESP-Miner's mask (:data:`FAULT_MASK`) with two refinements for a host that switches the output itself:
    OFF is a fault only while the host has the output commanded on (``output_on``), and an input
    under-voltage (VIN_UV without OC/OV/temperature) is left to the brown-out check on READ_VIN, which
    re-initialises the board (CLEAR_FAULTS) once the input is back.
    """
    for bit, reason in LATCH_REASONS:
        if word & bit:
            return reason
    if word & STATUS_VIN_UV:
        return None
    if word & STATUS_OFF and output_on:
        return "regulator_output_off"
    return None


class TPS546:
    """The regulator on ``bus``; :meth:`set_vout` refuses anything outside ``[vmin, vmax]`` and refuses to
    switch the output on until :meth:`configure` has written and verified the start-up configuration."""

    def __init__(self, bus: I2CBus, addr: int = ADDR, vmin: float = VOUT_MIN, vmax: float = VOUT_MAX) -> None:
        self.bus = bus
        self.addr = addr
        self.vmin = vmin
        self.vmax = vmax
        self._exp: int | None = None
        self.configured = False

    async def exponent(self) -> int:
        """VOUT_MODE exponent (read once, then cached)."""
        if self._exp is None:
            self._exp = vout_exponent(await read_u8(self.bus, self.addr, VOUT_MODE))
        return self._exp

    async def read_device_id(self) -> bytes:
        """IC_DEVICE_ID (SMBus block read: the length byte is dropped)."""
        raw = await self.bus.write_read(self.addr, bytes([cfgmod.IC_DEVICE_ID]), 7)
        return bytes(raw[1:7])

    async def configure(self, cfg: Tps546Config | None = None) -> list[cfgmod.RegWrite]:
        """ESP-Miner's ``TPS546_init``: check the device id, output off, ON_OFF_CONFIG 0x1F, the whole
        configuration, read every register back, CLEAR_FAULTS. Returns the writes; :class:`PowerError` names
        the first register that does not read back (the output stays off)."""
        self.configured = False
        dev_id = await self.read_device_id()
        if dev_id not in cfgmod.DEVICE_IDS:
            raise PowerError(
                f"TPS546 at 0x{self.addr:02X}: IC_DEVICE_ID {dev_id.hex(' ')} is not a TPS546D24A/S;"
                " output left off"
            )
        await write_u8(self.bus, self.addr, OPERATION, OPERATION_OFF)
        await write_u8(self.bus, self.addr, cfgmod.ON_OFF_CONFIG, cfgmod.ON_OFF_CONFIG_INIT)
        self._exp = None
        writes = cfgmod.startup_writes(cfg or Tps546Config(), await self.exponent())
        for w in writes:
            await self.bus.write(self.addr, w.wire)
        for w in writes:
            got = await self.bus.write_read(self.addr, bytes([w.cmd]), len(w.data))
            cfgmod.check_readback("TPS546", w, bytes(got))
        await self.bus.write(self.addr, bytes([cfgmod.CLEAR_FAULTS]))
        self.configured = True
        return writes

    async def vout_word(self, volts: float) -> int:
        """The VOUT_COMMAND word for ``volts`` (V): rounded down, never standing for more than ``volts``."""
        return ulinear16_from_float(volts, await self.exponent())

    async def set_vout(self, volts: float) -> None:
        """Range-check, program VOUT_COMMAND (V, rounded down) and switch the output on."""
        if not self.vmin <= volts <= self.vmax:
            raise PowerError(f"TPS546 core voltage {volts:.3f} V outside {self.vmin:.2f}-{self.vmax:.2f} V")
        self._require_configured()
        await write_u16(self.bus, self.addr, VOUT_COMMAND, await self.vout_word(volts))
        await self.set_enabled(True)

    def _require_configured(self) -> None:
        if not self.configured:
            raise PowerError(
                "TPS546 output not enabled: its start-up configuration has not been written and verified"
            )

    async def set_enabled(self, on: bool) -> None:
        """OPERATION on (0x80, only once configured) or off (0x00, always)."""
        if on:
            self._require_configured()
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
