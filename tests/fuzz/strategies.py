"""Hypothesis strategies shared by the fuzz tests: byte streams that mix valid frames with garbage."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from drivers.frames import JobFrame, NonceReply, RegisterReply, read_reg, write_reg
from drivers.registers import CHIP_PREAMBLE, HOST_PREAMBLE

_u32 = st.integers(0, 0xFFFFFFFF)
_u8 = st.integers(0, 0xFF)


def reply_bytes(reply_len: int) -> st.SearchStrategy[bytes]:
    """One valid chip->host reply (nonce or register) of ``reply_len`` bytes."""
    nonce = st.builds(NonceReply, _u32, _u8, _u8, st.integers(0, 0xFFFF) if reply_len == 11 else st.just(0))
    reg = st.builds(RegisterReply, _u32, _u8, _u8)
    return st.one_of(nonce, reg).map(lambda f: f.encode(reply_len))


def host_frame_bytes() -> st.SearchStrategy[bytes]:
    """One valid host->chip frame: a register write/read or a job."""
    write = st.builds(write_reg, _u8, _u32, _u8, st.booleans())
    read = st.builds(read_reg, _u8, _u8, st.booleans())
    job = st.builds(
        JobFrame,
        _u8,
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
        _u32,
        _u32,
        _u32,
        _u32,
    )
    return st.one_of(write, read, job).map(lambda f: f.encode())


def _damaged(frames: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A valid frame truncated or with one byte flipped."""

    def damage(data: st.DataObject, raw: bytes) -> bytes:
        if data.draw(st.booleans()):
            return raw[: data.draw(st.integers(1, len(raw) - 1))]
        i = data.draw(st.integers(0, len(raw) - 1))
        return raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1 :]

    return st.tuples(st.data(), frames).map(lambda t: damage(*t))


def mixed_stream(reply_len: int, host: bool = True) -> st.SearchStrategy[bytes]:
    """Valid replies (and host frames), damaged frames, lone preambles and random garbage, concatenated."""
    pieces = [
        reply_bytes(reply_len),
        _damaged(reply_bytes(reply_len)),
        st.binary(max_size=40),
        st.sampled_from([CHIP_PREAMBLE, HOST_PREAMBLE, b"\xaa", b"\x55", b"\xaa\x55\xaa\x55"]),
    ]
    if host:
        pieces += [host_frame_bytes(), _damaged(host_frame_bytes())]
    return st.lists(st.one_of(*pieces), max_size=30).map(b"".join)


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    """``stream`` split at the sorted positions ``cuts`` (values taken modulo the length)."""
    if not stream:
        return [b""]
    points = sorted({c % len(stream) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]
