"""Vectorised reply decoder: exactly the scalar decoder's frames and counters, on any stream and chunking."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.crc import crc5
from drivers.decoder import FrameDecoder
from drivers.frames import Frame, NonceReply, RegisterReply, write_reg
from drivers.reply_batch import ReplyBatch, ReplyBatchDecoder, crc_ok_windows, encode_replies
from tests.unit.drivers.test_decoder import (
    assert_recovered,
    chunkings,
    encode,
    host_frames,
    lossy_streams,
    noisy_garbage,
    replies,
    run_scalar,
)

u32s = st.integers(0, 0xFFFFFFFF)


def run_batch(chunks: list[bytes], reply_len: int) -> tuple[list[tuple[Frame, int]], ReplyBatchDecoder]:
    dec = ReplyBatchDecoder(reply_len)
    out: list[tuple[Frame, int]] = []
    for chunk in chunks:
        out += dec.feed(chunk).frames()
    return out, dec


def assert_same_as_scalar(chunks: list[bytes], reply_len: int) -> list[tuple[Frame, int]]:
    want, sdec = run_scalar(chunks, reply_len)
    got, bdec = run_batch(chunks, reply_len)
    assert got == want
    assert bdec.frames == sdec.stats.frames
    assert bdec.dropped_bytes == sdec.stats.dropped_bytes
    assert bdec.crc_errors == sdec.stats.bad_frames
    assert bdec.pending == sdec.pending
    assert bdec.bytes_in == sdec.stats.bytes_in
    return got


@given(st.data())
def test_lossy_streams_match_scalar_and_recover_intact_frames(data: st.DataObject) -> None:
    stream = data.draw(lossy_streams())
    chunks = data.draw(chunkings(stream.data))
    out = assert_same_as_scalar(chunks, stream.reply_len)
    assert_recovered(out, stream)


@given(st.data())
def test_noisy_streams_with_both_preambles_match_scalar(data: st.DataObject) -> None:
    reply_len = data.draw(st.sampled_from([9, 11]))
    frames = st.one_of(replies(reply_len), host_frames).map(lambda f: encode(f, reply_len))
    raw = bytearray(b"".join(data.draw(st.lists(st.one_of(noisy_garbage, frames), max_size=16))))
    for _ in range(data.draw(st.integers(0, 3))):  # bit flips anywhere
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    assert_same_as_scalar(data.draw(chunkings(bytes(raw))), reply_len)


@given(st.data())
def test_byte_at_a_time_equals_one_feed(data: st.DataObject) -> None:
    stream = data.draw(lossy_streams(host=False))
    whole, _ = run_batch([stream.data], stream.reply_len)
    single, _ = run_batch([stream.data[i : i + 1] for i in range(len(stream.data))], stream.reply_len)
    assert whole == single


def test_false_candidate_overlapping_real_frames_is_resolved_like_scalar() -> None:
    real = NonceReply(0x01020304, 0, 0x18, 0x0001).encode()
    # Find a garbage byte x so that "AA 55 x" + the first 8 bytes of the real frame pass the CRC: the scalar
    # decoder takes that false frame and loses the real one; the batch decoder must do exactly the same.
    x = next(x for x in range(256) if crc5(bytes([x]) + real[:8]) == 0)
    stream = b"\xaa\x55" + bytes([x]) + real + real
    out = assert_same_as_scalar([stream], 11)
    assert len(out) == 2
    assert out[1] == (NonceReply(0x01020304, 0, 0x18, 0x0001), len(stream))
    assert out[0][1] == 11  # the false frame won the overlap


def test_tail_is_kept_until_the_frame_completes() -> None:
    frame = RegisterReply(0x13660000, 0, 0).encode()
    dec = ReplyBatchDecoder()
    assert len(dec.feed(b"\x07" + frame[:6])) == 0
    assert dec.pending == 6
    batch = dec.feed(frame[6:])
    assert batch.end_offset.tolist() == [12]
    assert batch.value.tolist() == [0x13660000]
    assert batch.is_nonce.tolist() == [False]
    assert dec.dropped_bytes == 1 and dec.frames == 1


def test_batch_arrays_and_dtypes() -> None:
    nonces = [NonceReply(0xDEADBEEF, 2, 0x2B, 0x1234), NonceReply(0x00000001, 0, 0xF8, 0xFFFF)]
    reg = RegisterReply(0xCAFEF00D, 0x40, 0x8C)
    raw = b"".join(f.encode() for f in nonces) + reg.encode()
    batch = ReplyBatchDecoder().feed(raw)
    assert isinstance(batch, ReplyBatch) and len(batch) == 3
    assert batch.end_offset.dtype == np.int64 and batch.end_offset.tolist() == [11, 22, 33]
    assert batch.value.dtype == np.uint32 and batch.value.tolist() == [0xDEADBEEF, 1, 0xCAFEF00D]
    assert batch.b6.dtype == np.uint8 and batch.b6.tolist() == [2, 0, 0x40]
    assert batch.b7.tolist() == [0x2B, 0xF8, 0x8C]
    assert batch.version_bits.dtype == np.uint16 and batch.version_bits.tolist() == [0x1234, 0xFFFF, 0]
    assert batch.is_nonce.tolist() == [True, True, False]
    assert batch.job_id.tolist()[:2] == [0x28, 0xF8]
    assert batch.small_core.tolist()[:2] == [3, 0]


def test_host_frame_inside_reply_stream_is_returned() -> None:
    cmd = write_reg(0x14, 0xFF)
    raw = NonceReply(5, 0, 8).encode() + cmd.encode() + NonceReply(6, 0, 8).encode()
    batch = ReplyBatchDecoder().feed(raw)
    assert batch.value.tolist() == [5, 6]
    assert batch.host_frames == [(cmd, 22)]
    assert [f for f, _ in batch.frames()] == [NonceReply(5, 0, 8), cmd, NonceReply(6, 0, 8)]


def test_large_buffer_with_garbage_and_conflicts_matches_scalar() -> None:
    rng = np.random.default_rng(7)
    parts: list[bytes] = []
    for i in range(3000):
        parts.append(NonceReply(int(rng.integers(0, 2**32)), i % 5, int(rng.integers(0, 256)), i).encode())
        if i % 7 == 0:
            parts.append(bytes(rng.choice([0x55, 0xAA, 0x00, 0x13], size=int(rng.integers(1, 9))).tolist()))
    raw = b"".join(parts)
    cuts = sorted(rng.integers(0, len(raw), size=20).tolist())
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    out = assert_same_as_scalar(chunks, 11)
    assert len(out) >= 3000


def test_crc_windows_literal() -> None:
    good = np.frombuffer(bytes.fromhex("AA 55 13 66 00 00 00 00 00 00 05"), dtype=np.uint8)
    bad = good.copy()
    bad[4] ^= 0x10
    assert crc_ok_windows(np.stack([good, bad])).tolist() == [True, False]


def test_flush_and_bad_reply_len() -> None:
    dec = ReplyBatchDecoder(9)
    dec.feed(b"\xaa\x55\x01")
    assert dec.flush() == 3 and dec.pending == 0 and dec.dropped_bytes == 3
    assert len(dec.feed(b"")) == 0
    with pytest.raises(ValueError):
        ReplyBatchDecoder(10)


def test_scalar_reference_on_plain_replies() -> None:
    frames = [NonceReply(i, 0, 8 * i % 256) for i in range(20)]
    raw = b"".join(f.encode(9) for f in frames)
    got = assert_same_as_scalar([raw[:50], raw[50:]], 9)
    assert [f for f, _ in got] == frames
    assert FrameDecoder(9).feed(raw)[-1][1] == len(raw)


@given(
    st.lists(
        st.tuples(u32s, st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF), st.booleans()),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([9, 11]),
)
def test_vectorised_encoder_matches_scalar(
    rows: list[tuple[int, int, int, int, bool]], reply_len: int
) -> None:
    # The codec encodes register replies with version bits 0; use the same for them here.
    rows = [(v, b6, b7, vb if nonce else 0, nonce) for v, b6, b7, vb, nonce in rows]
    cols = list(zip(*rows))
    w = encode_replies(cols[0], cols[1], cols[2], cols[3], cols[4], reply_len)
    for row, (value, b6, b7, vb, nonce) in zip(w, rows):
        frame = NonceReply(value, b6, b7, vb) if nonce else RegisterReply(value, b6, b7)
        assert row.tobytes() == frame.encode(reply_len)
    batch = ReplyBatchDecoder(reply_len).feed(w.tobytes())
    assert batch.value.tolist() == list(cols[0])
    assert batch.is_nonce.tolist() == list(cols[4])


@pytest.mark.slow
def test_million_reply_stream_with_garbage_matches_scalar() -> None:
    """10^6 replies with garbage sprinkled in, fed in 64 KiB reads, against the scalar decoder."""
    rng = np.random.default_rng(11)
    n = 1_000_000
    w = encode_replies(
        rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32),
        rng.integers(0, 5, n),
        rng.integers(0, 256, n),
        rng.integers(0, 2**16, n),
    )
    raw = w.tobytes()
    cuts = sorted(rng.choice(len(raw), size=n // 50, replace=False).tolist())
    junk = rng.choice(np.array([0x55, 0xAA, 0x00, 0xFF], dtype=np.uint8), size=(len(cuts), 3))
    parts = []
    for (a, b), g in zip(itertools.pairwise([0, *cuts, len(raw)]), [*junk.tolist(), []]):
        parts += [raw[a:b], bytes(g)]
    data = b"".join(parts)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    out = assert_same_as_scalar(chunks, 11)
    assert len(out) > 0.95 * n
