"""PMBus number formats, encoded bit for bit as ESP-Miner's ``main/power/TPS546.c`` encodes them.

ESP-Miner computes in single precision (``float``, ``powf``) and converts to integers with C casts, which
truncate toward zero. The encoders here reproduce that (values go through float32 first), so the words the
daemon writes are the words the firmware writes; ``tests/unit/drivers/test_tps546_config.py`` pins them.

* ``slinear11_from_float`` = ``float_2_slinear11`` (positive values only; 0 for anything else, as the C does).
* ``slinear11_from_int`` = ``int_2_slinear11`` (exponent >= 0).
* ``ulinear16_from_float`` = ``float_2_ulinear16``: ``value / 2**exp`` truncated, i.e. rounded DOWN, so a
  VOUT word never stands for more than the voltage asked for.
"""

from __future__ import annotations

import math
import struct


def f32(x: float) -> float:
    """``x`` rounded to IEEE single precision (the firmware's ``float``)."""
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def decode_linear11(word: int) -> float:
    """PMBus LINEAR11: 5-bit two's-complement exponent (bits 15-11), 11-bit two's-complement mantissa."""
    exp = (word >> 11) & 0x1F
    mant = word & 0x7FF
    if exp > 15:
        exp -= 32
    if mant > 1023:
        mant -= 2048
    return mant * 2.0**exp


def slinear11_from_float(value: float) -> int:
    """ESP-Miner's ``float_2_slinear11``: the largest mantissa < 1024, exponent <= 0 (0 when value <= 0)."""
    v = f32(value)
    if not v > 0:
        return 0
    for i in range(16):
        if math.trunc(f32(v * 2.0**i)) >= 1024:
            exponent = i - 1
            mantissa = math.trunc(f32(v * 2.0**exponent))
            return ((-exponent << 11) & 0xF800) + mantissa
    return 0


def slinear11_from_int(value: int) -> int:
    """ESP-Miner's ``int_2_slinear11``: smallest exponent >= 0 with a mantissa < 1024 (0 if negative)."""
    if value < 0:
        return 0
    for i in range(16):
        mantissa = math.trunc(value / 2.0**i)
        if mantissa < 1024:
            return ((i << 11) & 0xF800) + mantissa
    return 0


def ulinear16_from_float(value: float, exponent: int) -> int:
    """ESP-Miner's ``float_2_ulinear16`` with the VOUT_MODE ``exponent``: truncated, never above ``value``.

    ValueError for a negative value or one that does not fit 16 bits (the C would wrap silently).
    """
    word = math.trunc(f32(f32(value) / 2.0**exponent))
    if not 0 <= word <= 0xFFFF:
        raise ValueError(f"{value} V does not fit ULINEAR16 with exponent {exponent}")
    # float32 can round a value up across a step (1.2 -> 1.2000000477); never let that raise the word
    while word > 0 and word * 2.0**exponent > value:
        word -= 1
    return word


def decode_ulinear16(word: int, exponent: int) -> float:
    """Volts for a ULINEAR16 ``word`` with the VOUT_MODE ``exponent``."""
    return word * 2.0**exponent
