"""CRC5 and CRC-16/CCITT-FALSE on check values and on the literal frames of docs/protocol.md."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from drivers.crc import (
    CRC5_TABLE_NP,
    crc5,
    crc5_bits,
    crc16_ccitt_false,
    reply_crc5,
    reply_crc_ok,
)

LITERAL_COMMANDS = [
    "55 AA 52 05 00 00 0A",
    "55 AA 53 05 00 00 03",
    "55 AA 40 05 00 00 1C",
    "55 AA 51 09 00 A4 90 00 FF FF 1C",
    "55 AA 51 09 00 14 00 00 00 FF 08",
    "55 AA 51 09 00 28 11 30 02 00 03",
    "55 AA 51 09 00 08 50 C2 02 40 1C",
]


def test_crc16_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_crc5_on_every_literal_command() -> None:
    for text in LITERAL_COMMANDS:
        raw = bytes.fromhex(text)
        assert crc5(raw[2:-1]) == raw[-1], text
        assert crc5_bits(raw[2:-1]) == raw[-1], text


def test_chip_id_reply_crc() -> None:
    raw = bytes.fromhex("AA 55 13 66 00 00 00 00 00 00 05")
    assert reply_crc_ok(raw[2:])
    assert reply_crc5(raw[2:]) == 0x05
    bad = raw[:-1] + bytes([raw[-1] ^ 0x01])
    assert not reply_crc_ok(bad[2:])


def test_numpy_table_matches_list_table() -> None:
    assert CRC5_TABLE_NP.dtype == np.uint8
    # The table state is crc << 3: folding a byte from state s is table[s ^ b].
    for b in range(256):
        assert int(CRC5_TABLE_NP[(0x1F << 3) ^ b]) >> 3 == crc5(bytes([b]))


@given(st.binary(max_size=40))
def test_table_crc5_equals_bitwise(data: bytes) -> None:
    assert crc5(data) == crc5_bits(data)


@given(st.binary(min_size=1, max_size=40))
def test_appending_crc16_gives_zero_residue(data: bytes) -> None:
    crc = crc16_ccitt_false(data)
    assert crc16_ccitt_false(data + crc.to_bytes(2, "big")) == 0


@given(st.binary(min_size=5, max_size=12), st.integers(0, 7))
def test_reply_crc_residue_zero_for_good_and_nonzero_for_single_bit_flip(body: bytes, bit: int) -> None:
    top = body[-1] & 0xE0
    good = body[:-1] + bytes([top | reply_crc5(body[:-1] + bytes([top]))])
    assert reply_crc_ok(good)
    flipped = bytearray(good)
    flipped[0] ^= 1 << bit
    assert not reply_crc_ok(bytes(flipped))
