"""Fuzz the frame decoders (both directions, scalar and vectorised) with valid, damaged and random bytes.

Properties: no input raises; every returned frame is exactly the bytes it ended on (re-encoding it gives the
stream slice before its end offset); frames + dropped + pending bytes account for every byte fed; the
vectorised decoder returns the same frames as the scalar one, whatever the chunking.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.decoder import MAX_PENDING, FrameDecoder
from drivers.frames import InvalidFrame, NonceReply, RegisterReply, decode, parse_exact
from drivers.reply_batch import ReplyBatchDecoder
from tests.fuzz.strategies import chunked, mixed_stream

#: Examples per property: a few seconds each on a loaded 2-core machine.
EXAMPLES = 150


def _encode(frame: object, reply_len: int) -> bytes:
    if isinstance(frame, NonceReply | RegisterReply):
        return frame.encode(reply_len)
    return frame.encode()  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("reply_len", [11, 9])
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_scalar_decoder_accounts_for_every_byte(reply_len: int, data: st.DataObject) -> None:
    stream = data.draw(mixed_stream(reply_len))
    cuts = data.draw(st.lists(st.integers(0, 10_000), max_size=8))
    dec = FrameDecoder(reply_len)
    frame_bytes = 0
    for chunk in chunked(stream, cuts):
        for frame, end in dec.feed(chunk):
            n = len(_encode(frame, reply_len))
            assert parse_exact(stream[end - n : end], reply_len) == frame  # exactly the bytes it ended on
            frame_bytes += n
    s = dec.stats
    assert s.bytes_in == len(stream)
    assert frame_bytes + s.dropped_bytes + dec.pending == len(stream)
    dec.flush()
    assert dec.pending == 0


@pytest.mark.parametrize("reply_len", [11, 9])
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_vectorised_decoder_matches_scalar_in_any_chunking(reply_len: int, data: st.DataObject) -> None:
    stream = data.draw(mixed_stream(reply_len))
    cuts_a = data.draw(st.lists(st.integers(0, 10_000), max_size=8))
    cuts_b = data.draw(st.lists(st.integers(0, 10_000), max_size=8))
    scalar = FrameDecoder(reply_len)
    want = [fe for c in chunked(stream, cuts_a) for fe in scalar.feed(c)]
    vec = ReplyBatchDecoder(reply_len)
    got = [fe for c in chunked(stream, cuts_b) for fe in vec.feed(c).frames()]
    assert got == want
    assert vec.crc_errors == scalar.stats.bad_frames
    assert vec.dropped_bytes + vec.pending == scalar.stats.dropped_bytes + scalar.pending


@settings(max_examples=EXAMPLES)
@given(st.binary(max_size=200), st.integers(0, 250), st.sampled_from([9, 11]))
def test_one_frame_decode_never_raises_and_consumes_within_the_buffer(
    buf: bytes, pos: int, reply_len: int
) -> None:
    pos = min(pos, len(buf))
    frame, consumed = decode(buf, pos, reply_len)
    assert 0 <= consumed <= len(buf) - pos
    assert frame is None or consumed > 0


@settings(max_examples=EXAMPLES)
@given(st.binary(max_size=120))
def test_parse_exact_raises_only_invalid_frame(raw: bytes) -> None:
    try:
        frame = parse_exact(raw)
    except InvalidFrame as exc:
        assert str(exc)
    else:
        reply_len = len(raw) if raw[:2] == b"\xaa\x55" else 11
        assert len(_encode(frame, reply_len)) == len(raw)
        assert parse_exact(_encode(frame, reply_len), reply_len) == frame


@settings(max_examples=20)
@given(st.integers(0, 2**32 - 1), st.integers(5000, 20_000))
def test_long_garbage_is_bounded_in_memory(seed: int, n: int) -> None:
    garbage = random.Random(seed).randbytes(n)
    scalar, vec = FrameDecoder(), ReplyBatchDecoder()
    for _ in range(3):
        scalar.feed(garbage)
        vec.feed(garbage)
        assert scalar.pending <= MAX_PENDING and vec.pending <= MAX_PENDING + 11
