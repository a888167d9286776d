"""CRC5 (command frames and chip replies) and CRC-16/CCITT-FALSE (job frames).

Both as in ESP-Miner ``components/asic/crc.c``; pinned by tests on the literal frames in ``docs/protocol.md``.
Table-driven byte versions plus numpy lookup tables for the vectorised reply decoder.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CRC5_POLY = 0x05
CRC5_INIT = 0x1F
CRC16_POLY = 0x1021
CRC16_INIT = 0xFFFF


def crc5_bits(data: bytes, nbits: int | None = None, init: int = CRC5_INIT) -> int:
    """CRC5 (poly x^5+x^2+1, MSB first, no reflection, no final XOR) over the first ``nbits`` bits."""
    total = len(data) * 8 if nbits is None else nbits
    crc = init
    for i in range(total):
        bit = (data[i >> 3] >> (7 - (i & 7))) & 1
        fb = ((crc >> 4) & 1) ^ bit
        crc = (crc << 1) & 0x1F
        if fb:
            crc ^= CRC5_POLY
    return crc


def _crc5_byte_table() -> list[int]:
    # Register kept in the top 5 bits of a byte ("crc << 3"), so that a whole byte folds in one lookup.
    table = []
    for b in range(256):
        reg = b
        for _ in range(8):
            reg = ((reg << 1) ^ (CRC5_POLY << 3)) & 0xFF if reg & 0x80 else (reg << 1) & 0xFF
        table.append(reg)
    return table


CRC5_TABLE: list[int] = _crc5_byte_table()
#: numpy copy of :data:`CRC5_TABLE` (state is ``crc << 3``), for column-wise vectorised checks.
CRC5_TABLE_NP: npt.NDArray[np.uint8] = np.array(CRC5_TABLE, dtype=np.uint8)


def crc5(data: bytes) -> int:
    """CRC5 over whole bytes (table-driven); equals :func:`crc5_bits` over ``8 * len(data)`` bits."""
    reg = CRC5_INIT << 3
    for b in data:
        reg = CRC5_TABLE[reg ^ b]
    return reg >> 3


def reply_crc5(body: bytes) -> int:
    """CRC5 of a chip reply: over ``body`` (bytes 2..n-2) and the top 3 bits of the last byte.

    ``body`` is the reply without preamble, ending with the last byte whose low 5 bits are ignored.
    """
    return crc5_bits(body, nbits=(len(body) - 1) * 8 + 3)


def reply_crc_ok(frame_without_preamble: bytes) -> bool:
    """True when a chip reply (bytes 2..end, CRC included) leaves a zero CRC5 residue."""
    return crc5(frame_without_preamble) == 0


def _crc16_table() -> list[int]:
    table = []
    for b in range(256):
        crc = b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC16_POLY) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


CRC16_TABLE: list[int] = _crc16_table()


def crc16_ccitt_false(data: bytes, init: int = CRC16_INIT) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); ``b"123456789"`` gives 0x29B1."""
    crc = init
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc
