"""The hot path, pure: reads -> nonce and register columns, timestamps, bit fields, share check; pinned on
literal bytes (docs/protocol.md §2, docs/recording-format.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.decoder import FrameDecoder
from drivers.frames import JobFrame, NonceReply
from drivers.read_decoder import MAX_CORRECTION_NS, ReadDecoder, read_structure, wire_time_estimate
from drivers.share import JobTable, share_difficulty
from drivers.transport import ReadBatch, wire_time_ns
from drivers.transport.base import BITS_PER_BYTE

#: NonceReply(nonce=0x0A2E4C11, b6=0x00, b7=0x2B, version_bits=0x1234): core 5, chip bits 0x17, job 0x28,
#: small core 3 (docs/protocol.md §2).
NONCE = bytes.fromhex("aa550a2e4c11002b123497")
#: RegisterReply(value=0x13660000, chip_addr=0, reg=0x00): a BM1366 answering the chip-id read.
CHIP_ID = bytes.fromhex("aa55136600000000000005")
NS_1M = BITS_PER_BYTE * 1_000  # ns per byte at 1 Mbaud


def _nonce(i: int) -> bytes:
    return NonceReply(0x1000_0000 + i, 0, (i * 8) & 0xF8 | (i & 7), i & 0xFFFF).encode()


def test_literal_reply_bytes_give_every_column() -> None:
    dec = ReadDecoder(chips=16)
    out = dec.decode([ReadBatch(NONCE + NONCE + NONCE, 5_000_000, 7)], 1_000_000)
    n = out.nonces
    assert n.nonce.tolist() == [0x0A2E4C11] * 3 and n.version_bits.tolist() == [0x1234] * 3
    assert n.core.tolist() == [5] * 3 and n.chip.tolist() == [0x17 // 16] * 3
    assert n.job_id.tolist() == [0x28] * 3 and n.small_core.tolist() == [3] * 3
    assert n.t_ns.tolist() == [5_000_000] * 3  # the raw read time
    assert n.t_wire_ns.tolist() == [5_000_000 - 22 * NS_1M, 5_000_000 - 11 * NS_1M, 5_000_000]
    assert n.read_id.tolist() == [7] * 3 and n.read_index.tolist() == [0] * 3
    assert n.read_pos.tolist() == [0, 1, 2] and n.read_nonces.tolist() == [3] * 3
    assert n.share_diff.tolist() == [0.0] * 3  # no job table
    assert len(out.registers) == 0 and dec.nonces == 3


def test_a_frame_split_over_reads_belongs_to_the_read_of_its_last_byte_and_garbage_is_counted() -> None:
    dec = ReadDecoder()
    first = dec.decode([ReadBatch(b"\x00\x13" + CHIP_ID[:5], 100, 0)], 115_200)
    assert len(first.nonces) == len(first.registers) == 0
    reads = [ReadBatch(CHIP_ID[5:] + b"\xff" + NONCE[:4], 10_000_000, 1), ReadBatch(NONCE[4:], 10_500_000, 2)]
    out = dec.decode(reads, [115_200, 1_000_000])
    r = out.registers
    assert r.value.tolist() == [0x13660000] and r.reg.tolist() == [0] and r.t_ns.tolist() == [10_000_000]
    assert out.nonces.read_id.tolist() == [2] and out.nonces.read_index.tolist() == [1]
    assert out.nonces.t_ns.tolist() == out.nonces.t_wire_ns.tolist() == [10_500_000]
    assert dec.dropped_bytes == 3 and dec.register_replies == 1


def test_share_difficulty_per_nonce_and_unknown_jobs_are_zero() -> None:
    job = JobFrame(0x28, bytes(range(32)), bytes(range(32, 64)), 0x20000000, 0x1703A30C, 0x64000000)
    table = JobTable()
    table.add(job)
    other = NonceReply(0x0A2E4C11, 0, 0x30 | 3, 0x1234).encode()  # job 0x30 was never sent
    out = ReadDecoder().decode([ReadBatch(NONCE + other, 1, 0)], 1_000_000, table).nonces
    want = share_difficulty(job, NonceReply(0x0A2E4C11, 0, 0x2B, 0x1234))
    assert out.share_diff[0] == pytest.approx(want, rel=1e-12) and out.share_diff[1] == 0.0


def test_a_batched_read_never_stamps_before_the_previous_read() -> None:
    """30 frames arrive together 300 us after the previous read (uncorrected, the first is 3.2 ms early)."""
    dec = ReadDecoder()
    t0, t1 = 5_000_000_000, 5_000_300_000
    first = dec.decode([ReadBatch(_nonce(0), t0, 0)], 1_000_000).nonces
    assert first.t_wire_ns.tolist() == [t0]
    second = dec.decode([ReadBatch(b"".join(_nonce(i) for i in range(30)), t1, 1)], 1_000_000).nonces
    t = second.t_wire_ns
    exact = t1 - np.arange(29, -1, -1) * 11 * NS_1M  # the floor holds across calls too
    assert np.array_equal(t, np.maximum(exact, t0)) and np.count_nonzero(t == t0) == 27
    assert second.t_ns.tolist() == [t1] * 30


def test_the_correction_is_capped_for_the_first_read() -> None:
    """No previous read: only the cap bounds the correction (a 200-frame read is 22 ms of wire at 1 Mbaud)."""
    t0 = 9_000_000_000
    t = ReadDecoder().decode([ReadBatch(b"".join(_nonce(i) for i in range(200)), t0, 0)], 1_000_000)
    w = t.nonces.t_wire_ns
    assert w.min() == t0 - MAX_CORRECTION_NS and np.all(np.diff(w) >= 0) and w[-1] == t0


@given(
    n=st.integers(1, 30),
    cuts=st.lists(st.integers(0, 400), max_size=10),
    garbage=st.lists(st.tuples(st.integers(0, 30), st.binary(min_size=1, max_size=5)), max_size=5),
    baud=st.sampled_from([115_200, 1_000_000, 3_125_000]),
    per_call=st.integers(1, 4),
)
def test_any_read_split_gives_the_scalar_decoders_frames_with_bounded_times(
    n: int, cuts: list[int], garbage: list[tuple[int, bytes]], baud: int, per_call: int
) -> None:
    """Frames as the scalar FrameDecoder finds them; each in the read of its last byte; t_wire_ns bounded."""
    parts = [_nonce(i) for i in range(n)]
    for at, junk in garbage:
        parts.insert(min(at, len(parts)), junk)
    stream = b"".join(parts)
    bounds = sorted({c for c in cuts if 0 < c < len(stream)} | {0, len(stream)})
    spans = list(itertools.pairwise(bounds))
    reads = [ReadBatch(stream[a:b], 10**9 + 2_000 * i, i) for i, (a, b) in enumerate(spans)]
    want = [(f, end) for f, end in FrameDecoder().feed(stream) if isinstance(f, NonceReply)]
    dec = ReadDecoder()
    got_nonce: list[int] = []
    got_rid: list[int] = []
    for i in range(0, len(reads), per_call):
        cols = dec.decode(reads[i : i + per_call], baud).nonces
        got_nonce += cols.nonce.tolist()
        got_rid += cols.read_id.tolist()
        assert np.all(cols.t_wire_ns <= cols.t_ns) and np.all(cols.t_ns - cols.t_wire_ns <= MAX_CORRECTION_NS)
        assert np.all(np.diff(cols.t_wire_ns) >= 0)
    assert got_nonce == [f.nonce for f, _ in want]
    ends = np.cumsum([b - a for a, b in spans])
    assert got_rid == [int(np.searchsorted(ends, end)) for _, end in want]


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_garbage_never_raises(chunks: list[bytes]) -> None:
    dec = ReadDecoder(chips=3)
    out = dec.decode([ReadBatch(c, i, i) for i, c in enumerate(chunks)], 115_200, JobTable())
    assert len(out.nonces.t_ns) == len(out.nonces) and dec.crc_errors >= 0


@given(
    reads=st.lists(
        st.tuples(st.integers(0, 5_000_000), st.integers(0, 2_000), st.sampled_from([115_200, 3_125_000])),
        min_size=1,
        max_size=30,
    )
)
def test_wire_time_estimate_lies_between_the_previous_read_and_its_own(
    reads: list[tuple[int, int, int]],
) -> None:
    gaps, after, baud = (np.array(c, dtype=np.int64) for c in zip(*reads, strict=True))
    t_read = 10**12 + np.cumsum(gaps)
    prev = np.concatenate([[np.iinfo(np.int64).min], t_read[:-1]])
    t = wire_time_estimate(t_read, prev, after, baud)
    raw = t_read - after * BITS_PER_BYTE * 1_000_000_000 // baud
    assert np.all(t <= t_read) and np.all(t >= prev)
    assert np.all(t_read - t <= MAX_CORRECTION_NS)
    assert np.all(t >= raw)  # only ever less correction than the wire time, never more
    ok = (raw >= prev) & (t_read - raw <= MAX_CORRECTION_NS)
    assert np.array_equal(t[ok], raw[ok])  # unchanged when neither bound applies
    assert wire_time_ns(11, 1_000_000) == 110_000


@given(st.lists(st.integers(1, 6), min_size=0, max_size=20))
def test_read_structure_counts_positions_within_each_read(sizes: list[int]) -> None:
    idx = np.repeat(np.arange(len(sizes)) * 3, sizes)  # any increasing read keys
    pos, count = read_structure(idx)
    assert pos.tolist() == [i for s in sizes for i in range(s)]
    assert count.tolist() == [s for s in sizes for _ in range(s)]
