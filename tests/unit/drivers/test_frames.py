"""Frame codec: every literal frame of docs/protocol.md byte for byte, layout of the job frame, round
trips."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.chipmath import pll_for_frequency, ticket_mask, version_rolling_value
from drivers.crc import crc16_ccitt_false
from drivers.frames import (
    CommandFrame,
    InvalidFrame,
    JobFrame,
    NonceReply,
    RegisterReply,
    chain_inactive,
    decode,
    parse_exact,
    read_reg,
    set_address,
    word_reverse,
    write_reg,
)
from drivers.registers import Cmd, reg_addr, reg_name

LITERALS: list[tuple[str, CommandFrame]] = [
    ("55 AA 52 05 00 00 0A", read_reg(0x00)),
    ("55 AA 53 05 00 00 03", chain_inactive()),
    ("55 AA 40 05 00 00 1C", set_address(0x00)),
    ("55 AA 51 09 00 A4 90 00 FF FF 1C", write_reg(0xA4, version_rolling_value())),
    ("55 AA 51 09 00 14 00 00 00 FF 08", write_reg(0x14, ticket_mask(256))),
    ("55 AA 51 09 00 28 11 30 02 00 03", write_reg(0x28, 0x11300200)),
    ("55 AA 51 09 00 08 50 C2 02 40 1C", write_reg(0x08, pll_for_frequency(485).register_value)),
]


@pytest.mark.parametrize(("text", "frame"), LITERALS, ids=[t for t, _ in LITERALS])
def test_literal_command_encodes_and_decodes(text: str, frame: CommandFrame) -> None:
    raw = bytes.fromhex(text)
    assert frame.encode() == raw
    assert parse_exact(raw) == frame
    assert decode(raw) == (frame, len(raw))


def test_chip_id_reply_literal() -> None:
    raw = bytes.fromhex("AA 55 13 66 00 00 00 00 00 00 05")
    frame = parse_exact(raw)
    assert frame == RegisterReply(0x13660000, 0x00, 0x00)
    assert frame.encode() == raw


def test_header_bytes_seen_in_practice() -> None:
    assert set_address(1).header == 0x40
    assert write_reg(0x14, 0, broadcast=False).header == 0x41
    assert write_reg(0x14, 0).header == 0x51
    assert read_reg(0).header == 0x52
    assert chain_inactive().header == 0x53


def test_job_frame_layout() -> None:
    prev = bytes(range(32))
    merkle = bytes(range(100, 132))
    job = JobFrame(0x28, prev, merkle, version=0x20000004, nbits=0x1703A30C, ntime=0x6543210F)
    raw = job.encode()
    assert len(raw) == 88
    assert raw[:6] == bytes([0x55, 0xAA, 0x21, 0x56, 0x28, 0x01])
    assert raw[6:10] == bytes(4)  # starting nonce
    assert raw[10:14] == struct.pack("<I", 0x1703A30C)
    assert raw[14:18] == struct.pack("<I", 0x6543210F)
    # Word-reversed: last 4-byte word first, bytes inside each word unchanged.
    assert raw[18:22] == merkle[28:32]
    assert raw[46:50] == merkle[0:4]
    assert raw[50:54] == prev[28:32]
    assert raw[78:82] == prev[0:4]
    assert raw[82:86] == struct.pack("<I", 0x20000004)
    assert int.from_bytes(raw[86:88], "big") == crc16_ccitt_false(raw[2:86])
    assert parse_exact(raw) == job


def test_job_with_other_length_byte_is_accepted() -> None:
    job = JobFrame(8, bytes(32), bytes(32), 1, 2, 3, length_byte=0x36)
    assert parse_exact(job.encode()) == job


def test_word_reverse_is_an_involution_and_checks_length() -> None:
    h = bytes(range(32))
    assert word_reverse(word_reverse(h)) == h
    with pytest.raises(ValueError):
        word_reverse(b"\x00" * 31)


def test_parse_exact_names_expected_and_received() -> None:
    raw = bytes.fromhex("55 AA 52 05 00 00 0B")
    with pytest.raises(InvalidFrame) as err:
        parse_exact(raw)
    assert err.value.expected == "55 aa 52 05 00 00 0a"
    assert err.value.received == "55 aa 52 05 00 00 0b"
    assert "CRC5" in str(err.value)
    with pytest.raises(InvalidFrame):
        parse_exact(bytes.fromhex("AA 55 13 66 00 00 00 00 00 00 06"))


def test_encoders_reject_out_of_range() -> None:
    with pytest.raises(ValueError):
        write_reg(0x14, 1 << 32).encode()
    with pytest.raises(ValueError):
        CommandFrame(Cmd.READ_REGISTER, chip_addr=256).encode()
    with pytest.raises(ValueError):
        NonceReply(1, 2, 3).encode(reply_len=10)


def test_register_names() -> None:
    assert reg_addr("TICKET_MASK") == 0x14
    assert reg_name(0xA4) == "VERSION_ROLLING"
    assert reg_name(0xEE) == "REG_0xEE"
    with pytest.raises(KeyError, match="known"):
        reg_addr("NOPE")


byte = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
commands = st.one_of(
    st.builds(write_reg, byte, u32, byte, st.booleans()),
    st.builds(read_reg, byte, byte, st.booleans()),
    st.builds(set_address, byte),
    st.just(chain_inactive()),
)
jobs = st.builds(
    JobFrame,
    job_id=byte,
    prev_block_hash=st.binary(min_size=32, max_size=32),
    merkle_root=st.binary(min_size=32, max_size=32),
    version=u32,
    nbits=u32,
    ntime=u32,
    starting_nonce=u32,
    num_midstates=byte,
    length_byte=st.sampled_from([0x56, 0x36]),
)


@given(st.one_of(commands, jobs))
def test_host_frame_round_trip(frame: CommandFrame | JobFrame) -> None:
    raw = frame.encode()
    assert parse_exact(raw) == frame
    assert decode(raw) == (frame, len(raw))


@given(u32, byte, byte, st.integers(0, 0xFFFF), st.sampled_from([9, 11]))
def test_nonce_round_trip(nonce: int, b6: int, b7: int, vbits: int, reply_len: int) -> None:
    raw = NonceReply(nonce, b6, b7, vbits).encode(reply_len)
    assert len(raw) == reply_len
    assert raw[-1] & 0x80
    expected = NonceReply(nonce, b6, b7, vbits if reply_len == 11 else 0)
    assert parse_exact(raw) == expected
    assert decode(raw, 0, reply_len) == (expected, reply_len)
    assert expected.job_id == b7 & 0xF8 and expected.small_core == b7 & 7
    assert raw[2:6] == expected.nonce_bytes


@given(u32, byte, byte, st.sampled_from([9, 11]))
def test_register_reply_round_trip(value: int, chip: int, reg: int, reply_len: int) -> None:
    frame = RegisterReply(value, chip, reg)
    raw = frame.encode(reply_len)
    assert not raw[-1] & 0x80
    assert parse_exact(raw) == frame
    assert decode(raw, 0, reply_len) == (frame, reply_len)


@given(st.one_of(commands, jobs), st.data())
def test_any_single_bit_flip_in_a_command_is_rejected(
    frame: CommandFrame | JobFrame, data: st.DataObject
) -> None:
    raw = bytearray(frame.encode())
    i = data.draw(st.integers(2, len(raw) - 1))
    raw[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(InvalidFrame):
        parse_exact(bytes(raw))
