"""The TPS546D24A start-up configuration ESP-Miner writes before it enables the output, as a write list.

Source: ESP-Miner ``main/power/TPS546.c`` (``TPS546_init``, ``TPS546_write_entire_config``), ``TPS546.h``
(``TPS546_INIT_*`` constants, ``ON_OFF_CONFIG_*`` bits) and ``main/power/vcore.c`` (``get_tps546_config``,
the ``default:`` branch for the single-phase MAX/ULTRA/SUPRA/GAMMA families). Command codes: ESP-Miner
``main/pmbus_commands.h``. Every word is encoded with the firmware's own converters (:mod:`.pmbus`).

:func:`startup_writes` is pure (no I/O): the driver writes the list, reads every register back and refuses to
enable the output unless each one reads back exactly what was written (:func:`check_readback`).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.parts.errors import PowerError
from drivers.parts.pmbus import slinear11_from_float, slinear11_from_int, ulinear16_from_float

# PMBus command codes (ESP-Miner pmbus_commands.h)
OPERATION = 0x01
ON_OFF_CONFIG = 0x02
CLEAR_FAULTS = 0x03
PHASE = 0x04
VOUT_MODE = 0x20
VOUT_COMMAND = 0x21
VOUT_MAX = 0x24
VOUT_MARGIN_HIGH = 0x25
VOUT_MARGIN_LOW = 0x26
VOUT_SCALE_LOOP = 0x29
VOUT_MIN = 0x2B
FREQUENCY_SWITCH = 0x33
VIN_ON = 0x35
VIN_OFF = 0x36
VOUT_OV_FAULT_LIMIT = 0x40
VOUT_OV_WARN_LIMIT = 0x42
VOUT_UV_WARN_LIMIT = 0x43
VOUT_UV_FAULT_LIMIT = 0x44
IOUT_OC_FAULT_LIMIT = 0x46
IOUT_OC_FAULT_RESPONSE = 0x47
IOUT_OC_WARN_LIMIT = 0x4A
OT_FAULT_LIMIT = 0x4F
OT_FAULT_RESPONSE = 0x50
OT_WARN_LIMIT = 0x51
VIN_OV_FAULT_LIMIT = 0x55
VIN_OV_FAULT_RESPONSE = 0x56
VIN_UV_WARN_LIMIT = 0x58
TON_DELAY = 0x60
TON_RISE = 0x61
TON_MAX_FAULT_LIMIT = 0x62
TON_MAX_FAULT_RESPONSE = 0x63
TOFF_DELAY = 0x64
TOFF_FALL = 0x65
IC_DEVICE_ID = 0xAD
SYNC_CONFIG = 0xE4
STACK_CONFIG = 0xEC
PIN_DETECT_OVERRIDE = 0xEE

# ON_OFF_CONFIG bits (TPS546.h)
ON_OFF_CONFIG_PU = 0x10
ON_OFF_CONFIG_CMD = 0x08
ON_OFF_CONFIG_CP = 0x04
ON_OFF_CONFIG_POLARITY = 0x02
ON_OFF_CONFIG_DELAY = 0x01
#: TPS546_init's first write ("make sure power is turned off until commanded"): 0x1F.
ON_OFF_CONFIG_INIT = (
    ON_OFF_CONFIG_DELAY | ON_OFF_CONFIG_POLARITY | ON_OFF_CONFIG_CP | ON_OFF_CONFIG_CMD | ON_OFF_CONFIG_PU
)
#: TPS546_write_entire_config's value (CONTROL pin ignored, OPERATION command obeyed): 0x1B.
ON_OFF_CONFIG_RUN = ON_OFF_CONFIG_DELAY | ON_OFF_CONFIG_POLARITY | ON_OFF_CONFIG_CMD | ON_OFF_CONFIG_PU

#: IC_DEVICE_ID (block read, length byte first) of the parts ESP-Miner accepts: TPS546D24A, TPS546D24S.
DEVICE_IDS: tuple[bytes, ...] = (
    bytes([0x54, 0x49, 0x54, 0x6D, 0x24, 0x41]),
    bytes([0x54, 0x49, 0x54, 0x6D, 0x24, 0x62]),
)


@dataclass(frozen=True, slots=True)
class Tps546Config:
    """Start-up values (V, A, deg C, kHz, ms; fault responses as PMBus bytes). Defaults: ESP-Miner's
    single-phase boards (``vcore.c`` ``default:`` branch, ``TPS546.h`` ``TPS546_INIT_*``)."""

    phase: int = 0x00  # TPS546_INIT_PHASE_SINGLE
    vin_on: float = 4.8
    vin_off: float = 4.5
    vin_uv_warn_limit: float = 0.0  # 0: not written (vcore.c; the "UV_WARN_LIMIT bug")
    vin_ov_fault_limit: float = 6.5
    vin_ov_fault_response: int = 0xB7  # shut down, 6 hiccup restarts, then latch off
    scale_loop: float = 0.25
    vout_min: float = 1.0
    vout_max: float = 2.0
    vout_command: float = 1.2
    vout_ov_fault_limit: float = 1.25
    vout_ov_warn_limit: float = 1.16
    vout_margin_high: float = 1.1
    vout_margin_low: float = 0.90
    vout_uv_warn_limit: float = 0.90
    vout_uv_fault_limit: float = 0.75
    iout_oc_warn_limit: float = 25.0
    iout_oc_fault_limit: float = 30.0
    iout_oc_fault_response: int = 0xC0  # shut down immediately, no restart (latch off)
    ot_warn_limit: int = 105
    ot_fault_limit: int = 145
    ot_fault_response: int = 0xFF  # shut down until below OT_WARN, then restart
    ton_delay: int = 0
    ton_rise: int = 3
    ton_max_fault_limit: int = 0
    ton_max_fault_response: int = 0x3B
    toff_delay: int = 0
    toff_fall: int = 0
    stack_config: int = 0x0000  # one module
    sync_config: int = 0x10  # SYNC disabled
    frequency_khz: int = 650  # TPS546_DEFAULT_FREQUENCY
    pin_detect_override: int = 0xFFFF  # INIT_PIN_DETECT_OVERRIDE


@dataclass(frozen=True, slots=True)
class RegWrite:
    """One register write: ``name``, command ``cmd`` and the data bytes after it (little-endian words)."""

    name: str
    cmd: int
    data: bytes

    @property
    def wire(self) -> bytes:
        """The bytes on the I2C bus after the address: command then data."""
        return bytes([self.cmd]) + self.data


def _b(name: str, cmd: int, value: int) -> RegWrite:
    return RegWrite(name, cmd, bytes([value & 0xFF]))


def _w(name: str, cmd: int, word: int) -> RegWrite:
    return RegWrite(name, cmd, (word & 0xFFFF).to_bytes(2, "little"))


def startup_writes(cfg: Tps546Config, vout_exp: int) -> list[RegWrite]:
    """ESP-Miner's ``TPS546_write_entire_config`` for ``cfg``, in order (``vout_exp``: VOUT_MODE exponent).

    COMPENSATION_CONFIG is left out: the firmware writes it only for GAMMA_TURBO (all five bytes non-zero).
    """

    def vout(v: float) -> int:
        return ulinear16_from_float(v, vout_exp)

    out = [
        _b("ON_OFF_CONFIG", ON_OFF_CONFIG, ON_OFF_CONFIG_RUN),
        _w("STACK_CONFIG", STACK_CONFIG, cfg.stack_config),
        _b("SYNC_CONFIG", SYNC_CONFIG, cfg.sync_config),
        _b("PHASE", PHASE, cfg.phase),
        _w("FREQUENCY_SWITCH", FREQUENCY_SWITCH, slinear11_from_int(cfg.frequency_khz)),
    ]
    if cfg.vin_uv_warn_limit > 0:
        out.append(_w("VIN_UV_WARN_LIMIT", VIN_UV_WARN_LIMIT, slinear11_from_float(cfg.vin_uv_warn_limit)))
    out += [
        _w("VIN_ON", VIN_ON, slinear11_from_float(cfg.vin_on)),
        _w("VIN_OFF", VIN_OFF, slinear11_from_float(cfg.vin_off)),
        _w("VIN_OV_FAULT_LIMIT", VIN_OV_FAULT_LIMIT, slinear11_from_float(cfg.vin_ov_fault_limit)),
        _b("VIN_OV_FAULT_RESPONSE", VIN_OV_FAULT_RESPONSE, cfg.vin_ov_fault_response),
        _w("VOUT_SCALE_LOOP", VOUT_SCALE_LOOP, slinear11_from_float(cfg.scale_loop)),
        _w("VOUT_COMMAND", VOUT_COMMAND, vout(cfg.vout_command)),
        _w("VOUT_MAX", VOUT_MAX, vout(cfg.vout_max)),
        _w("VOUT_MIN", VOUT_MIN, vout(cfg.vout_min)),
        _w("VOUT_OV_FAULT_LIMIT", VOUT_OV_FAULT_LIMIT, vout(cfg.vout_ov_fault_limit)),
        _w("VOUT_OV_WARN_LIMIT", VOUT_OV_WARN_LIMIT, vout(cfg.vout_ov_warn_limit)),
        _w("VOUT_MARGIN_HIGH", VOUT_MARGIN_HIGH, vout(cfg.vout_margin_high)),
        _w("VOUT_MARGIN_LOW", VOUT_MARGIN_LOW, vout(cfg.vout_margin_low)),
        _w("VOUT_UV_WARN_LIMIT", VOUT_UV_WARN_LIMIT, vout(cfg.vout_uv_warn_limit)),
        _w("VOUT_UV_FAULT_LIMIT", VOUT_UV_FAULT_LIMIT, vout(cfg.vout_uv_fault_limit)),
        _w("IOUT_OC_WARN_LIMIT", IOUT_OC_WARN_LIMIT, slinear11_from_float(cfg.iout_oc_warn_limit)),
        _w("IOUT_OC_FAULT_LIMIT", IOUT_OC_FAULT_LIMIT, slinear11_from_float(cfg.iout_oc_fault_limit)),
        _b("IOUT_OC_FAULT_RESPONSE", IOUT_OC_FAULT_RESPONSE, cfg.iout_oc_fault_response),
        _w("OT_WARN_LIMIT", OT_WARN_LIMIT, slinear11_from_int(cfg.ot_warn_limit)),
        _w("OT_FAULT_LIMIT", OT_FAULT_LIMIT, slinear11_from_int(cfg.ot_fault_limit)),
        _b("OT_FAULT_RESPONSE", OT_FAULT_RESPONSE, cfg.ot_fault_response),
        _w("TON_DELAY", TON_DELAY, slinear11_from_int(cfg.ton_delay)),
        _w("TON_RISE", TON_RISE, slinear11_from_int(cfg.ton_rise)),
        _w("TON_MAX_FAULT_LIMIT", TON_MAX_FAULT_LIMIT, slinear11_from_int(cfg.ton_max_fault_limit)),
        _b("TON_MAX_FAULT_RESPONSE", TON_MAX_FAULT_RESPONSE, cfg.ton_max_fault_response),
        _w("TOFF_DELAY", TOFF_DELAY, slinear11_from_int(cfg.toff_delay)),
        _w("TOFF_FALL", TOFF_FALL, slinear11_from_int(cfg.toff_fall)),
        _w("PIN_DETECT_OVERRIDE", PIN_DETECT_OVERRIDE, cfg.pin_detect_override),
    ]
    return out


def check_readback(part: str, write: RegWrite, got: bytes) -> None:
    """Raise :class:`PowerError` naming the register unless ``got`` equals what ``write`` wrote."""
    if got != write.data:
        raise PowerError(
            f"{part} start-up configuration did not verify: {write.name} (0x{write.cmd:02X}) wrote"
            f" {write.data.hex(' ')}, read back {got.hex(' ') or 'nothing'}; output left off"
        )
