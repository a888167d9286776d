"""Emulator core: addressing, register reads/writes, reply lengths and CRCs (decoded by the codec)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.crc import reply_crc_ok
from drivers.frames import (
    NonceReply,
    RegisterReply,
    chain_inactive,
    parse_exact,
    read_reg,
    set_address,
    write_reg,
)
from simulator.chain import ChainCore
from simulator.mining import encode_reply, pll_frequency_hz, ticket_difficulty, uart_baud

CHIP_ID_REPLY_11 = bytes.fromhex("AA 55 13 66 00 00 00 00 00 00 05")
ROLLING_ON = write_reg(0xA4, 0x9000FFFF)


class Host:
    """Drives a core with monotonically increasing command times."""

    def __init__(self, core: ChainCore) -> None:
        self.core = core
        self.t = 0.0

    def send(self, frame: bytes, dt: float = 1e-3) -> list[bytes]:
        self.t += dt
        self.core.feed(frame, self.t)
        self.t += dt
        return [data for _, data in self.core.advance(self.t)]

    def bring_up(self, ticket_mask: int = 0x000000FF, pll: int = 0x50C20240) -> None:
        n = self.core.n
        self.send(ROLLING_ON.encode())
        self.send(chain_inactive().encode())
        for i in range(n):
            self.send(set_address(i * (256 // n)).encode())
        self.send(write_reg(0x14, ticket_mask).encode())
        self.send(write_reg(0x08, pll).encode())


def reg_replies(raw: list[bytes]) -> list[RegisterReply]:
    out = []
    for r in raw:
        frame = parse_exact(r, len(r))
        assert isinstance(frame, RegisterReply)
        out.append(frame)
    return out


def test_reset_chain_answers_chip_id_with_9_byte_replies() -> None:
    host = Host(ChainCore(chips=4, seed=1))
    raw = host.send(read_reg(0x00).encode())
    assert len(raw) == 4
    assert all(len(r) == 9 and reply_crc_ok(r[2:]) for r in raw)
    assert [f.value for f in reg_replies(raw)] == [0x13660000] * 4


def test_version_rolling_switches_replies_to_11_bytes_literal() -> None:
    host = Host(ChainCore(chips=2, seed=1))
    host.send(ROLLING_ON.encode())
    raw = host.send(bytes.fromhex("55 AA 52 05 00 00 0A"))
    assert raw == [CHIP_ID_REPLY_11, CHIP_ID_REPLY_11]


def test_set_address_after_chain_inactive_and_addressed_reads() -> None:
    host = Host(ChainCore(chips=4, seed=1))
    host.bring_up()
    for i in range(4):
        (reply,) = reg_replies(host.send(read_reg(0x00, chip_addr=i * 64, broadcast=False).encode()))
        assert reply.chip_addr == i * 64
        assert reply.value == 0x13660000 | (i * 64)
    assert host.send(read_reg(0x00, chip_addr=0x20, broadcast=False).encode()) == []


def test_set_address_without_chain_inactive_is_ignored() -> None:
    host = Host(ChainCore(chips=2, seed=1))
    host.send(set_address(0x80).encode())
    assert [f.chip_addr for f in reg_replies(host.send(read_reg(0x00).encode()))] == [0, 0]


@given(
    reg=st.sampled_from([0x10, 0x18, 0x2C, 0x3C, 0x54, 0x58, 0x60]),
    value=st.integers(0, 0xFFFFFFFF),
    chip=st.integers(0, 2),
)
def test_register_reads_return_what_was_written(reg: int, value: int, chip: int) -> None:
    host = Host(ChainCore(chips=3, seed=2))
    host.send(chain_inactive().encode())
    for i in range(3):
        host.send(set_address(i * 0x50).encode())
    host.send(write_reg(reg, value, chip_addr=chip * 0x50, broadcast=False).encode())
    replies = reg_replies(host.send(read_reg(reg).encode()))
    got = {f.chip_addr: f.value for f in replies}
    for i in range(3):
        expect = value if i == chip else host.core.chips[i].regs[reg]
        assert got[i * 0x50] == expect
    assert got[chip * 0x50] == value


def test_reset_values_come_from_the_register_table() -> None:
    host = Host(ChainCore(chips=1, seed=0))
    host.send(ROLLING_ON.encode())
    for reg, expect in [
        (0x08, 0xC0540165),
        (0x14, 0),
        (0x18, 0x0000C100),
        (0x28, 0x01301A00),
        (0x58, 0x00012111),
    ]:
        (reply,) = reg_replies(host.send(read_reg(reg).encode()))
        assert reply.value == expect and reply.reg == reg


@pytest.mark.parametrize(
    ("value", "mhz"),
    [(0xC0540165, 50.0), (0x50C20240, 485.0), (0x40A80230, 525.0), (0x40A00241, 200.0)],
)
def test_pll_values_give_documented_frequencies(value: int, mhz: float) -> None:
    assert pll_frequency_hz(value) == pytest.approx(mhz * 1e6)


@pytest.mark.parametrize(("mask", "diff"), [(0, 1), (0x000000FF, 256), (0x000080FF, 512), (0x0000C0FF, 1024)])
def test_ticket_masks_give_documented_difficulties(mask: int, diff: int) -> None:
    assert ticket_difficulty(mask) == diff


def _host_ticket_mask(d: int) -> int:
    """docs/protocol.md rule: largest 2^k <= d, 2^k - 1, bit-reverse each byte, MSB byte first."""
    k = d.bit_length() - 1
    raw = ((1 << k) - 1).to_bytes(4, "big")
    return int.from_bytes(bytes(int(f"{b:08b}"[::-1], 2) for b in raw), "big")


@given(st.integers(1, 2**31))
def test_ticket_mask_roundtrip_any_difficulty(d: int) -> None:
    assert ticket_difficulty(_host_ticket_mask(d)) == 1 << (d.bit_length() - 1)


def test_writes_take_effect_pll_ticket_uart() -> None:
    core = ChainCore(chips=2, seed=3)
    host = Host(core)
    assert core.baud == pytest.approx(25e6 / 27 / 8)
    host.bring_up()
    assert all(c.freq_hz == pytest.approx(485e6) and c.ticket_diff == 256 for c in core.chips)
    host.send(bytes.fromhex("55 AA 51 09 00 28 11 30 02 00 03"))
    assert core.baud == pytest.approx(25e6 / 24)
    host.send(write_reg(0x28, 0x11300000).encode())
    assert core.baud == pytest.approx(3.125e6)
    assert core.expected_rate(0) == pytest.approx(485e6 * 894 / (256 * 2**32))


def test_soft_reset_and_reset_line_return_to_reset_state() -> None:
    core = ChainCore(chips=2, seed=3)
    host = Host(core)
    host.bring_up()
    core.set_reset_line(False, host.t + 0.001)
    host.t += 0.002
    assert host.send(read_reg(0x00).encode()) == []  # held in reset: silent
    core.set_reset_line(True, host.t + 0.001)
    host.t += 0.002
    raw = host.send(read_reg(0x00).encode())
    assert len(raw) == 2 and all(len(r) == 9 for r in raw)
    assert all(c.freq_hz == pytest.approx(50e6) and c.address == 0 for c in core.chips)


def test_garbage_and_bad_crc_host_frames_are_ignored() -> None:
    host = Host(ChainCore(chips=1, seed=0))
    bad = bytearray(read_reg(0x00).encode())
    bad[-1] ^= 0x01
    assert host.send(b"\x00\x13\x99" + bytes(bad)) == []
    assert len(host.send(read_reg(0x00).encode())) == 1


def test_byte_at_a_time_host_input() -> None:
    host = Host(ChainCore(chips=2, seed=0))
    out: list[bytes] = []
    for b in read_reg(0x00).encode():
        out += host.send(bytes([b]), dt=1e-5)
    out += [d for _, d in host.core.advance(host.t + 0.01)]
    assert len(out) == 2


@given(
    d=st.binary(min_size=4, max_size=4),
    b6=st.integers(0, 255),
    b7=st.integers(0, 255),
    version=st.integers(0, 0xFFFF),
    length=st.sampled_from([9, 11]),
)
def test_fast_reply_encoder_matches_codec(d: bytes, b6: int, b7: int, version: int, length: int) -> None:
    nonce = encode_reply(d, b6, b7, version, True, length)
    assert nonce == NonceReply(int.from_bytes(d, "big"), b6, b7, version if length == 11 else 0).encode(
        length
    )
    reg = encode_reply(d, b6, b7, 0, False, length)
    assert reg == RegisterReply(int.from_bytes(d, "big"), b6, b7).encode(length)


def test_uart_baud_formula() -> None:
    assert uart_baud(0x01301A00) == pytest.approx(115_740.74, rel=1e-6)


def test_chain_size_is_validated() -> None:
    with pytest.raises(ValueError, match="chips"):
        ChainCore(chips=0)
    with pytest.raises(ValueError, match="chips"):
        ChainCore(chips=129)
