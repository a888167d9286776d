"""I2C device models whose registers follow the chain's physical model (addresses and scalings: bm1366.md).

Each device sees raw I2C transactions: ``write(data, t)`` (first byte = register/command, then data) and
``read(n, t)`` (from the register last addressed). Writes that matter (core voltage, regulator on/off,
fan duty) go to the :class:`~simulator.chain.ChainCore` at simulated time ``t``.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from simulator.chain import ChainCore

#: Board input voltage (V): Bitaxe boards run from a 5 V barrel supply.
VIN_V = 5.0
#: Regulator efficiency used for input power (buck converters of this class: ~85-90 %).
REGULATOR_EFFICIENCY = 0.88
#: Fan speed at 100 % duty (RPM), a 40 mm fan on a Bitaxe (assumption) -> EMC2101 tach = 5,400,000 / RPM.
FAN_MAX_RPM = 6000.0
#: DS4432U trim byte -> core voltage, fitted through the ESP-Miner table (bm1366.md): 1.10 V at 0xE1 (sink
#: 97) ... 1.30 V at 0xAB (sink 43): 3.704 mV per step, 1.4593 V at zero current.
DS4432_V0 = 1.4593
DS4432_V_PER_STEP = 0.2 / 54


class I2CDevice(Protocol):
    """One device on the board's I2C bus."""

    def write(self, data: bytes, t: float) -> None: ...

    def read(self, n: int, t: float) -> bytes: ...


def linear11(x: float) -> int:
    """PMBus LINEAR11 word for ``x`` (5-bit exponent, 11-bit mantissa, both two's complement)."""
    for n in range(-16, 16):
        y = round(x / 2.0**n)
        if -1024 <= y <= 1023:
            return ((n & 0x1F) << 11) | (y & 0x7FF)
    raise ValueError(f"{x} out of LINEAR11 range")


def from_linear11(word: int) -> float:
    """Inverse of :func:`linear11`."""
    n = (word >> 11) & 0x1F
    y = word & 0x7FF
    n = n - 32 if n > 15 else n
    y = y - 2048 if y > 1023 else y
    return y * 2.0**n


class _Registers:
    """Pointer-register storage shared by the models: unknown registers read back what was written."""

    def __init__(self, core: ChainCore) -> None:
        self.core = core
        self.ptr = 0
        self.stored: dict[int, bytes] = {}

    def write(self, data: bytes, t: float) -> None:
        if not data:
            return
        self.ptr = data[0]
        if len(data) > 1:
            self.stored[data[0]] = bytes(data[1:])
            self.on_write(data[0], bytes(data[1:]), t)

    def read(self, n: int, t: float) -> bytes:
        value = self.value(self.ptr, t)
        if value is None:
            value = self.stored.get(self.ptr, b"")
        return (value + bytes(n))[:n]

    def on_write(self, reg: int, data: bytes, t: float) -> None:
        """Side effects of a register write."""

    def value(self, reg: int, t: float) -> bytes | None:
        """Live value of ``reg``, or None to read back the stored bytes."""
        return None

    def chip_power_w(self, t: float) -> float:
        self.core.advance_physics(t)
        return float(self.core.physics.power_w(self.core.active_freqs()).sum())


class TPS546D24A(_Registers):
    """PMBus buck regulator at 0x24 (Gamma, Ultra 207, Supra 402+). VOUT_MODE exponent -9 (ULINEAR16)."""

    VOUT_EXP = -9
    #: IC_DEVICE_ID block read (0xAD) of a TPS546D24A, as ESP-Miner checks it.
    DEVICE_ID = bytes([0x06, 0x54, 0x49, 0x54, 0x6B, 0x24, 0x41])

    def __init__(self, core: ChainCore) -> None:
        super().__init__(core)
        self.on = True
        #: Input supply (V) reported by READ_VIN; set it to emulate a sagging supply.
        self.vin_v = VIN_V
        self.stored[0x20] = bytes([self.VOUT_EXP & 0x1F])
        self.stored[0x21] = round(core.physics.v_target / 2.0**self.VOUT_EXP).to_bytes(2, "little")

    def on_write(self, reg: int, data: bytes, t: float) -> None:
        if reg == 0x01:
            self.on = bool(data[0] & 0x80)
            self.core.set_power(self.on, t)
        elif reg == 0x21 and len(data) >= 2:
            self.core.set_voltage(int.from_bytes(data[:2], "little") * 2.0**self.VOUT_EXP, t)
        elif reg == 0x20:
            self.stored[0x20] = bytes([self.VOUT_EXP & 0x1F])  # read-only in this model

    def value(self, reg: int, t: float) -> bytes | None:
        core = self.core
        if reg == 0x01:
            return bytes([0x80 if self.on else 0x00])
        if reg == 0x88:
            return linear11(self.vin_v).to_bytes(2, "little")
        if reg == 0x8B:
            core.advance_physics(t)
            return round(core.physics.volts / 2.0**self.VOUT_EXP).to_bytes(2, "little")
        if reg == 0x8C:
            p = self.chip_power_w(t)
            amps = p / core.physics.volts if core.physics.volts > 0.05 else 0.0
            return linear11(amps).to_bytes(2, "little")
        if reg == 0x8D:
            p = self.chip_power_w(t)
            loss = p * (1 / REGULATOR_EFFICIENCY - 1)
            return linear11(core.params.ambient_c + 10.0 + 8.0 * loss).to_bytes(2, "little")
        if reg == 0x79:
            status = 0x0040 if not self.on else 0
            return status.to_bytes(2, "little")
        if reg == 0xAD:
            return self.DEVICE_ID
        return None


class DS4432U(_Registers):
    """Current DAC at 0x48 trimming the Ultra's buck feedback (register 0xF8): sign bit 7, magnitude 6-0."""

    def __init__(self, core: ChainCore) -> None:
        super().__init__(core)
        self.stored[0xF8] = bytes([self.code_for(core.physics.v_target)])

    @staticmethod
    def volts_for(code: int) -> float:
        """Core voltage (V) for a trim byte: sinking (bit 7 set) lowers it, sourcing raises it."""
        mag = code & 0x7F
        sign = -1 if code & 0x80 else 1
        return DS4432_V0 + sign * mag * DS4432_V_PER_STEP

    @staticmethod
    def code_for(volts: float) -> int:
        """Nearest trim byte for ``volts`` (inverse of :meth:`volts_for`)."""
        steps = round((DS4432_V0 - volts) / DS4432_V_PER_STEP)
        return (0x80 | min(steps, 127)) if steps > 0 else min(-steps, 127)

    def on_write(self, reg: int, data: bytes, t: float) -> None:
        if reg == 0xF8:
            self.core.set_voltage(self.volts_for(data[0]), t)


class INA260(_Registers):
    """Power monitor at 0x40 on the 5 V input: 16-bit big-endian registers (current, bus voltage, power)."""

    def __init__(self, core: ChainCore) -> None:
        super().__init__(core)
        #: Input supply (V) on the monitored rail; set it to emulate a sagging supply.
        self.vin_v = VIN_V

    def value(self, reg: int, t: float) -> bytes | None:
        p_in = self.chip_power_w(t) / REGULATOR_EFFICIENCY + 0.5  # + board overhead (ESP32, fan), W
        if reg == 0x00:
            return (0x6127).to_bytes(2, "big")
        if reg == 0x01:
            return min(round(p_in / self.vin_v / 1.25e-3), 0x7FFF).to_bytes(2, "big")
        if reg == 0x02:
            return round(self.vin_v / 1.25e-3).to_bytes(2, "big")
        if reg == 0x03:
            return min(round(p_in / 10e-3), 0xFFFF).to_bytes(2, "big")
        if reg == 0xFE:
            return (0x5449).to_bytes(2, "big")
        if reg == 0xFF:
            return (0x2270).to_bytes(2, "big")
        return None


class EMC2101(_Registers):
    """Fan controller / temperature sensor at 0x4C: external diode = hottest chip, fan duty in 0x4C (0-63)."""

    def __init__(self, core: ChainCore) -> None:
        super().__init__(core)
        self.stored[0x4C] = bytes([round(core.physics.fan_duty * 63)])

    def on_write(self, reg: int, data: bytes, t: float) -> None:
        if reg == 0x4C:
            self.core.set_fan(min(data[0], 63) / 63.0, t)

    def value(self, reg: int, t: float) -> bytes | None:
        core = self.core
        if reg in (0x00, 0x01, 0x10):
            core.advance_physics(t)
            chip_c = float(np.max(core.physics.temp_c))
            if reg == 0x00:
                board_c = core.params.ambient_c + 0.3 * (chip_c - core.params.ambient_c)
                return bytes([max(0, min(127, round(board_c)))])
            eighths = max(0, min(127 * 8, math.floor(chip_c * 8)))
            return bytes([eighths >> 3]) if reg == 0x01 else bytes([(eighths & 7) << 5])
        if reg in (0x46, 0x47):
            rpm = FAN_MAX_RPM * core.physics.fan_duty
            tach = 0xFFFF if rpm < 100 else min(0xFFFF, round(5_400_000 / rpm))
            return bytes([tach & 0xFF if reg == 0x46 else tach >> 8])
        if reg == 0xFD:
            return b"\x16"
        if reg == 0xFE:
            return b"\x5d"
        if reg == 0xFF:
            return b"\x01"
        return None


def board_devices(kind: str, core: ChainCore) -> dict[int, I2CDevice]:
    """Devices by I2C address: ``gamma`` (TPS546D24A, EMC2101) or ``ultra`` (DS4432U, INA260, EMC2101)."""
    if kind == "gamma":
        return {0x24: TPS546D24A(core), 0x4C: EMC2101(core)}
    if kind == "ultra":
        return {0x48: DS4432U(core), 0x40: INA260(core), 0x4C: EMC2101(core)}
    raise ValueError(f"board kind must be 'gamma' or 'ultra', got {kind!r}")
