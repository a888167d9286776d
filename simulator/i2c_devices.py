"""I2C device models whose registers follow the chain's physical model (addresses and scalings:
docs/protocol.md).

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
#: DS4432U trim byte -> core voltage (DS4432U transfer function, ESP-Miner DS4432U.c board constants):
#: VFB * (1 + RA / RB) at zero current, RA * IFS / 127 per step.
DS4432_V0 = 0.6 * (1 + 4750.0 / 3320.0)
DS4432_V_PER_STEP = 4750.0 * 0.000098921 / 127


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


#: TPS546D24A power-on values of the emulated part (command -> stored bytes). Every register ESP-Miner's
#: start-up configuration writes holds something ELSE here, so a start-up that misses a write is caught; the
#: values are the emulator's choice (plausible TI defaults), not a datasheet table.
TPS546_POWER_ON: dict[int, bytes] = {
    0x02: b"\x17",  # ON_OFF_CONFIG: CONTROL pin only, OPERATION ignored (firmware: 0x1B)
    0x04: b"\xff",  # PHASE: all phases
    0x24: (768).to_bytes(2, "little"),  # VOUT_MAX 1.5 V
    0x25: (538).to_bytes(2, "little"),  # VOUT_MARGIN_HIGH
    0x26: (486).to_bytes(2, "little"),  # VOUT_MARGIN_LOW
    0x29: linear11(0.5).to_bytes(2, "little"),  # VOUT_SCALE_LOOP 0.5 (firmware: 0.25)
    0x2B: (256).to_bytes(2, "little"),  # VOUT_MIN 0.5 V
    0x33: linear11(550).to_bytes(2, "little"),  # FREQUENCY_SWITCH 550 kHz
    0x35: linear11(4.25).to_bytes(2, "little"),  # VIN_ON
    0x36: linear11(4.0).to_bytes(2, "little"),  # VIN_OFF
    0x40: (691).to_bytes(2, "little"),  # VOUT_OV_FAULT_LIMIT
    0x42: (665).to_bytes(2, "little"),  # VOUT_OV_WARN_LIMIT
    0x43: (410).to_bytes(2, "little"),  # VOUT_UV_WARN_LIMIT
    0x44: (358).to_bytes(2, "little"),  # VOUT_UV_FAULT_LIMIT
    0x46: linear11(48.0).to_bytes(2, "little"),  # IOUT_OC_FAULT_LIMIT
    0x47: b"\x3c",  # IOUT_OC_FAULT_RESPONSE: hiccup, restart
    0x4A: linear11(40.0).to_bytes(2, "little"),  # IOUT_OC_WARN_LIMIT
    0x4F: linear11(150).to_bytes(2, "little"),  # OT_FAULT_LIMIT
    0x50: b"\xbc",  # OT_FAULT_RESPONSE
    0x51: linear11(125).to_bytes(2, "little"),  # OT_WARN_LIMIT
    0x55: linear11(16.0).to_bytes(2, "little"),  # VIN_OV_FAULT_LIMIT
    0x56: b"\x80",  # VIN_OV_FAULT_RESPONSE
    0x60: linear11(1).to_bytes(2, "little"),  # TON_DELAY
    0x61: linear11(1).to_bytes(2, "little"),  # TON_RISE
    0x62: linear11(10).to_bytes(2, "little"),  # TON_MAX_FAULT_LIMIT
    0x63: b"\xbb",  # TON_MAX_FAULT_RESPONSE
    0x64: linear11(1).to_bytes(2, "little"),  # TOFF_DELAY
    0x65: linear11(1).to_bytes(2, "little"),  # TOFF_FALL
    0xE4: b"\x00",  # SYNC_CONFIG
    0xEC: (0x0001).to_bytes(2, "little"),  # STACK_CONFIG
    0xEE: (0x0000).to_bytes(2, "little"),  # PIN_DETECT_OVERRIDE
}
#: The board's output divider the emulated TPS546 is wired for: with VOUT_SCALE_LOOP at this value the output
#: is VOUT_COMMAND; any other scale multiplies it by scale / this (a missing VOUT_SCALE_LOOP write shows).
TPS546_BOARD_SCALE = 0.25


class TPS546D24A(_Registers):
    """PMBus buck regulator at 0x24 (Gamma, Ultra 207, Supra 402+). VOUT_MODE exponent -9 (ULINEAR16).

    Holds :data:`TPS546_POWER_ON` at power-on and honours what is written: ON_OFF_CONFIG decides whether
    OPERATION switches the output (the CONTROL pin is taken as asserted); output = VOUT_COMMAND (clamped to
    VOUT_MIN..VOUT_MAX) x VOUT_SCALE_LOOP / :data:`TPS546_BOARD_SCALE`; an output current above
    IOUT_OC_FAULT_LIMIT with a latch-off response (bits 7-6 = 11, 5-3 = 000) switches it off until OPERATION
    is written off again. The current is evaluated whenever READ_IOUT or STATUS_WORD is read (the part
    monitors it continuously; the emulator looks when asked); :meth:`latch` injects the same latch.
    STATUS_WORD: OFF (bit 6) while the output is off, IOUT_OC (bit 4) and IOUT/POUT (bit 14) while latched.
    """

    VOUT_EXP = -9
    #: VOUT_MODE as a TPS546D24A answers it (ESP-Miner logs "VOUT_MODE: 97"): relative format, linear, -9.
    VOUT_MODE = 0x80 | (VOUT_EXP & 0x1F)
    #: IC_DEVICE_ID block read (0xAD) of a TPS546D24A (length byte first), as ESP-Miner checks it.
    DEVICE_ID = bytes([0x06, 0x54, 0x49, 0x54, 0x6D, 0x24, 0x41])

    def __init__(self, core: ChainCore) -> None:
        super().__init__(core)
        #: Input supply (V) reported by READ_VIN; set it to emulate a sagging supply.
        self.vin_v = VIN_V
        self.operation = 0x00
        self.oc_latched = False
        self.stored.update(TPS546_POWER_ON)
        self.stored[0x20] = bytes([self.VOUT_MODE])
        # power-on command chosen so the output is the chain's start voltage with the power-on scale
        word = round(core.physics.v_target * TPS546_BOARD_SCALE / self.scale_loop / 2.0**self.VOUT_EXP)
        self.stored[0x21] = word.to_bytes(2, "little")
        self.on = self._effective_on()

    @property
    def scale_loop(self) -> float:
        """VOUT_SCALE_LOOP as stored (LINEAR11)."""
        return from_linear11(int.from_bytes(self.stored[0x29][:2], "little"))

    def _vout_reg(self, reg: int) -> float:
        return int.from_bytes(self.stored.get(reg, b"\0\0")[:2], "little") * 2.0**self.VOUT_EXP

    def output_target_v(self) -> float:
        """The output voltage (V): the command clamped to VOUT_MIN..VOUT_MAX, times the scale ratio."""
        cmd = min(max(self._vout_reg(0x21), self._vout_reg(0x2B)), self._vout_reg(0x24))
        return cmd * self.scale_loop / TPS546_BOARD_SCALE

    def _effective_on(self) -> bool:
        cfg = self.stored[0x02][0]
        if self.oc_latched:
            return False
        if not cfg & 0x10:  # PU = 0: converts whenever input power is present
            return True
        if cfg & 0x08:  # CMD: OPERATION decides (with CP too, the asserted CONTROL pin does not hold it off)
            return bool(self.operation & 0x80)
        return True  # CONTROL pin only (asserted), or neither: on

    def _update_power(self, t: float) -> None:
        on = self._effective_on()
        if on != self.on:
            self.on = on
            self.core.set_power(on, t)

    def on_write(self, reg: int, data: bytes, t: float) -> None:
        if reg == 0x01:
            self.operation = data[0]
            if not data[0] & 0x80:
                self.oc_latched = False
            self._update_power(t)
        elif reg == 0x02:
            self._update_power(t)
        elif reg in (0x21, 0x24, 0x29, 0x2B):
            self.core.set_voltage(self.output_target_v(), t)
        elif reg == 0x20:
            self.stored[0x20] = bytes([self.VOUT_MODE])  # read-only in this model

    def output_current_a(self, t: float) -> float:
        """The chain's current (A) at simulated time ``t`` from the power model (0 when the output is off)."""
        p = self.chip_power_w(t)
        return p / self.core.physics.volts if self.core.physics.volts > 0.05 else 0.0

    def latch(self, t: float) -> None:
        """Latch the output off as an over-current fault does (fault injection ``vr_latch``)."""
        self.oc_latched = True
        self._update_power(t)

    def _check_overcurrent(self, amps: float, t: float) -> None:
        limit = from_linear11(int.from_bytes(self.stored[0x46][:2], "little"))
        response = self.stored[0x47][0]
        if self.on and amps > limit and response >> 6 == 0b11 and (response >> 3) & 0b111 == 0:
            self.oc_latched = True
            self._update_power(t)

    def value(self, reg: int, t: float) -> bytes | None:
        core = self.core
        if reg == 0x01:
            return bytes([self.operation])
        if reg == 0x88:
            return linear11(self.vin_v).to_bytes(2, "little")
        if reg == 0x8B:
            core.advance_physics(t)
            return round(core.physics.volts / 2.0**self.VOUT_EXP).to_bytes(2, "little")
        if reg == 0x8C:
            amps = self.output_current_a(t)
            self._check_overcurrent(amps, t)
            return linear11(amps).to_bytes(2, "little")
        if reg == 0x8D:
            p = self.chip_power_w(t)
            loss = p * (1 / REGULATOR_EFFICIENCY - 1)
            return linear11(core.params.ambient_c + 10.0 + 8.0 * loss).to_bytes(2, "little")
        if reg == 0x79:
            self._check_overcurrent(self.output_current_a(t), t)
            status = (0x0040 if not self.on else 0) | (0x4010 if self.oc_latched else 0)
            return status.to_bytes(2, "little")
        if reg == 0xAD:
            return self.DEVICE_ID
        return None


class DS4432U(_Registers):
    """Current DAC at 0x48 trimming the Ultra's buck feedback (register 0xF8): sign bit 7, magnitude 6-0.

    Output voltage per the DS4432U transfer function with the board constants ESP-Miner's DS4432U.c uses
    (VFB 0.6 V, RA 4750 ohm, RB 3320 ohm, full scale 98.921 uA / 127 steps).
    """

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


#: EMC2101 power-on values of the emulated part: CONFIG 0x03 and FAN_CONFIG 0x4A chosen to differ from what
#: ESP-Miner writes (0x04, 0x23); ideality 0x17 = 0x12 and beta 0x18 = 0x08 are the part's defaults as
#: ESP-Miner's EMC2101.h marks them (the Gamma 600 series writes 0x24 / 0x00).
EMC2101_POWER_ON: dict[int, bytes] = {0x03: b"\x00", 0x4A: b"\x00", 0x17: b"\x12", 0x18: b"\x08"}
#: Ultra 201-205: the EMC2101 sits by the ASIC; ESP-Miner reads its internal sensor + 5 C as the chip
#: temperature, so this emulator puts the internal sensor 5 C below the hottest chip on those boards.
ULTRA_INTERNAL_BELOW_CHIP_C = 5.0


class EMC2101(_Registers):
    """Fan controller / temperature sensor at 0x4C: external diode = hottest chip, fan duty in 0x4C (0-63).

    Holds :data:`EMC2101_POWER_ON` and honours the writes: the tach registers read 0xFFFF (no tach) until
    0x03 bit 2 selects pin 6 as TACH input, and the duty register 0x4C drives the fan only once 0x4A bit 5
    selects direct setting (before that the fan keeps its power-on duty). ``internal_below_chip_c``: the
    internal sensor that many C below the hottest chip (Ultra), or None for a board temperature (ambient +
    30 % of the chip's rise).
    """

    def __init__(self, core: ChainCore, internal_below_chip_c: float | None = None) -> None:
        super().__init__(core)
        self.internal_below_chip_c = internal_below_chip_c
        self.stored.update(EMC2101_POWER_ON)
        self.stored[0x4C] = bytes([round(core.physics.fan_duty * 63)])

    def on_write(self, reg: int, data: bytes, t: float) -> None:
        if reg == 0x4C and self.stored[0x4A][0] & 0x20:
            self.core.set_fan(min(data[0], 63) / 63.0, t)
        elif reg == 0x4A and data[0] & 0x20:
            self.core.set_fan(min(self.stored[0x4C][0], 63) / 63.0, t)

    def value(self, reg: int, t: float) -> bytes | None:
        core = self.core
        if reg in (0x00, 0x01, 0x10):
            core.advance_physics(t)
            chip_c = float(np.max(core.physics.temp_c))
            if reg == 0x00:
                if self.internal_below_chip_c is not None:
                    board_c = chip_c - self.internal_below_chip_c
                else:
                    board_c = core.params.ambient_c + 0.3 * (chip_c - core.params.ambient_c)
                return bytes([max(0, min(127, round(board_c)))])
            eighths = max(0, min(127 * 8, math.floor(chip_c * 8)))
            return bytes([eighths >> 3]) if reg == 0x01 else bytes([(eighths & 7) << 5])
        if reg in (0x46, 0x47):
            rpm = FAN_MAX_RPM * core.physics.fan_duty
            tach = 0xFFFF if rpm < 100 else min(0xFFFF, round(5_400_000 / rpm))
            if not self.stored[0x03][0] & 0x04:  # pin 6 is ALERT, not TACH: no count
                tach = 0xFFFF
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
        emc = EMC2101(core, internal_below_chip_c=ULTRA_INTERNAL_BELOW_CHIP_C)
        return {0x48: DS4432U(core), 0x40: INA260(core), 0x4C: emc}
    raise ValueError(f"board kind must be 'gamma' or 'ultra', got {kind!r}")
