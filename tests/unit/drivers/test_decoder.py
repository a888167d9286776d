"""Scalar stream decoder: byte-at-a-time, random chunking, garbage, truncation, bit flips, both directions.

The stream strategies here are shared with ``test_reply_batch.py``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from drivers.decoder import FrameDecoder
from drivers.frames import (
    Frame,
    JobFrame,
    NonceReply,
    RegisterReply,
    chain_inactive,
    read_reg,
    set_address,
    write_reg,
)

#: Longest frame (a job): a corrupted frame followed by this much preamble-free garbage cannot reach the next.
GUARD = 88
byte = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
#: Garbage that cannot start a preamble (neither 0x55 nor 0xAA).
clean_garbage = st.binary(max_size=12).map(lambda b: bytes(x for x in b if x not in (0x55, 0xAA)))
#: Garbage biased towards preamble bytes (may contain false candidates).
noisy_garbage = st.lists(st.one_of(st.sampled_from([0x55, 0xAA]), byte), max_size=14).map(bytes)


def replies(reply_len: int) -> st.SearchStrategy[Frame]:
    vbits = st.integers(0, 0xFFFF) if reply_len == 11 else st.just(0)
    return st.one_of(
        st.builds(NonceReply, u32, byte, byte, vbits),
        st.builds(RegisterReply, u32, byte, byte),
    )


host_frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(write_reg, byte, u32, byte, st.booleans()),
    st.builds(read_reg, byte, byte, st.booleans()),
    st.builds(set_address, byte),
    st.just(chain_inactive()),
    st.builds(
        JobFrame,
        job_id=byte,
        prev_block_hash=st.binary(min_size=32, max_size=32),
        merkle_root=st.binary(min_size=32, max_size=32),
        version=u32,
        nbits=u32,
        ntime=u32,
    ),
)


def encode(frame: Frame, reply_len: int) -> bytes:
    if isinstance(frame, NonceReply | RegisterReply):
        return frame.encode(reply_len)
    return frame.encode()


@dataclass
class Stream:
    """A test stream: its bytes, the intact frames with their end offsets, and the reply length."""

    data: bytes
    intact: list[tuple[Frame, int]]
    reply_len: int
    damaged: int = 0


@st.composite
def lossy_streams(draw: st.DrawFn, host: bool = True) -> Stream:
    """Frames with garbage around them; some truncated or bit-flipped (then guarded by clean garbage)."""
    reply_len = draw(st.sampled_from([9, 11]))
    kinds = st.one_of(replies(reply_len), host_frames) if host else replies(reply_len)
    data = bytearray(draw(clean_garbage))
    intact: list[tuple[Frame, int]] = []
    damaged = 0
    for frame in draw(st.lists(kinds, max_size=12)):
        raw = bytearray(encode(frame, reply_len))
        damage = draw(st.sampled_from(["none", "none", "none", "truncate", "flip"]))
        if damage == "none":
            data += raw
            intact.append((frame, len(data)))
        else:
            damaged += 1
            if damage == "truncate":
                raw = raw[: draw(st.integers(0, len(raw) - 1))]
            else:
                i = draw(st.integers(0, len(raw) - 1))
                raw[i] ^= 1 << draw(st.integers(0, 7))
            data += raw
            data += bytes([0x00]) * GUARD  # keeps a false candidate from reaching the next frame
        data += draw(clean_garbage)
    return Stream(bytes(data), intact, reply_len, damaged)


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` split at random points (sometimes one byte at a time)."""
    if draw(st.booleans()) and len(data) < 400:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=8))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def run_scalar(chunks: list[bytes], reply_len: int) -> tuple[list[tuple[Frame, int]], FrameDecoder]:
    dec = FrameDecoder(reply_len)
    out: list[tuple[Frame, int]] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out, dec


def assert_recovered(out: list[tuple[Frame, int]], stream: Stream) -> None:
    """Every intact frame is decoded at its offset; extras may only come from damaged bytes."""
    missing = [fe for fe in stream.intact if fe not in out]
    assert not missing
    if not stream.damaged:
        assert out == stream.intact


def frame_len(frame: Frame, reply_len: int) -> int:
    return len(encode(frame, reply_len))


@given(st.data())
def test_lossy_stream_recovers_every_intact_frame(data: st.DataObject) -> None:
    stream = data.draw(lossy_streams())
    chunks = data.draw(chunkings(stream.data))
    out, dec = run_scalar(chunks, stream.reply_len)
    assert_recovered(out, stream)
    # Bookkeeping: every byte is in a frame, dropped, or pending.
    framed = sum(frame_len(f, stream.reply_len) for f, _ in out)
    assert framed + dec.stats.dropped_bytes + dec.pending == len(stream.data)
    assert dec.stats.frames == len(out)


@given(st.data())
def test_both_directions_interleaved_at_frame_boundaries(data: st.DataObject) -> None:
    reply_len = data.draw(st.sampled_from([9, 11]))
    frames = data.draw(st.lists(st.one_of(replies(reply_len), host_frames), max_size=20))
    raw = b"".join(encode(f, reply_len) for f in frames)
    chunks = data.draw(chunkings(raw))
    out, dec = run_scalar(chunks, reply_len)
    assert [f for f, _ in out] == frames
    assert dec.stats.dropped_bytes == 0 and dec.stats.bad_frames == 0 and dec.pending == 0


@given(st.data())
def test_noisy_garbage_never_raises_and_accounts_for_every_byte(data: st.DataObject) -> None:
    reply_len = data.draw(st.sampled_from([9, 11]))
    parts = data.draw(
        st.lists(st.one_of(noisy_garbage, replies(reply_len).map(lambda f: encode(f, reply_len))))
    )
    raw = b"".join(parts)
    out, dec = run_scalar(data.draw(chunkings(raw)), reply_len)
    framed = sum(frame_len(f, reply_len) for f, _ in out)
    assert framed + dec.stats.dropped_bytes + dec.pending == len(raw)
    assert dec.pending <= 88
    assert [end for _, end in out] == sorted(end for _, end in out)


def test_garbage_then_frame_literal() -> None:
    reply = bytes.fromhex("AA 55 13 66 00 00 00 00 00 00 05")
    dec = FrameDecoder()
    out = dec.feed(b"\x01\xaa\x02" + reply[:5])
    assert out == []
    out = dec.feed(reply[5:] + b"\xaa")
    assert out == [(RegisterReply(0x13660000, 0, 0), 14)]
    assert dec.stats.dropped_bytes == 3
    assert dec.pending == 1  # a lone trailing 0xAA may start the next frame
    assert dec.flush() == 1 and dec.stats.dropped_bytes == 4


def test_bad_crc_counts_one_bad_frame_and_resyncs() -> None:
    good = NonceReply(0x12345678, 1, 0x2B, 0x0F).encode()
    bad = good[:-1] + bytes([good[-1] ^ 0x01])
    out, dec = run_scalar([bad + good], 11)
    assert [f for f, _ in out] == [NonceReply(0x12345678, 1, 0x2B, 0x0F)]
    assert dec.stats.bad_frames == 1
    assert dec.stats.dropped_bytes == 11


def test_lone_preamble_byte_in_garbage_is_not_a_bad_frame() -> None:
    good = NonceReply(1, 2, 3, 4).encode()
    _, dec = run_scalar([b"\xaa\x00\x55\x01" + good], 11)
    assert dec.stats.bad_frames == 0
    assert dec.stats.dropped_bytes == 4
