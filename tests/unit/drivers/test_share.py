"""Share check on a real Bitcoin block header (block 125552), id extraction, and the batch path."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.chipmath import DIFF1_TARGET
from drivers.frames import JobFrame, NonceReply, parse_exact
from drivers.share import (
    JobTable,
    NonceByteOrder,
    block_header,
    check_share,
    chip_index,
    core_id,
    difficulty_of_hash,
    rolled_version,
    share_difficulties,
    share_difficulty,
)

# Block 125552 as block explorers show it (hashes in reversed display order).
PREV_DISPLAY = "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81"
MERKLE_DISPLAY = "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3"
BLOCK_HASH_DISPLAY = "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d"
VERSION, NTIME, NBITS, NONCE = 1, 1305998791, 0x1A44B9F2, 2504433986
# The well-known serialised 80-byte header of block 125552.
HEADER_HEX = (
    "01000000"
    "81cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000"
    "e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122b"
    "c7f5d74d"
    "f2b9441a"
    "42a14695"
)


def block_125552_job(job_id: int = 0x18) -> JobFrame:
    return JobFrame(
        job_id=job_id,
        prev_block_hash=bytes.fromhex(PREV_DISPLAY)[::-1],  # header byte order
        merkle_root=bytes.fromhex(MERKLE_DISPLAY)[::-1],
        version=VERSION,
        nbits=NBITS,
        ntime=NTIME,
    )


def block_125552_reply(b7: int = 0x18 | 5) -> NonceReply:
    # The chip sends the 4 header nonce bytes (the nonce little-endian) as d0..d3.
    return NonceReply(int.from_bytes(struct.pack("<I", NONCE), "big"), 0, b7, 0)


def test_real_block_header_and_hash() -> None:
    job, reply = block_125552_job(), block_125552_reply()
    header = block_header(job, reply)
    assert header.hex() == HEADER_HEX
    result = check_share(job, reply)
    assert result.hash_hex == BLOCK_HASH_DISPLAY
    assert result.difficulty == DIFF1_TARGET / int(BLOCK_HASH_DISPLAY, 16)
    assert result.difficulty == pytest.approx(3.5987e10, rel=1e-4)
    # The share beats the block's own target (nbits 0x1a44b9f2 -> difficulty ~244,112).
    target = 0x44B9F2 * 2 ** (8 * (0x1A - 3))
    assert int(BLOCK_HASH_DISPLAY, 16) < target
    assert result.job_id == 0x18 and result.small_core == 5


def test_real_block_through_the_wire_bytes() -> None:
    """Encode job and reply to bytes, decode them back, check the share from the decoded frames."""
    job_raw = block_125552_job().encode()
    reply_raw = block_125552_reply().encode()
    assert reply_raw[2:6] == struct.pack("<I", NONCE)
    job, reply = parse_exact(job_raw), parse_exact(reply_raw)
    assert isinstance(job, JobFrame) and isinstance(reply, NonceReply)
    assert share_difficulty(job, reply) == DIFF1_TARGET / int(BLOCK_HASH_DISPLAY, 16)


def test_wrong_nonce_or_version_gives_a_low_difficulty() -> None:
    job, reply = block_125552_job(), block_125552_reply()
    assert share_difficulty(job, NonceReply(reply.nonce ^ 1, 0, reply.b7)) < 1e-3
    assert share_difficulty(job, NonceReply(reply.nonce, 0, reply.b7, version_bits=1)) < 1e-3


def test_rolled_version_goes_into_the_header() -> None:
    job = block_125552_job()
    job = JobFrame(job.job_id, job.prev_block_hash, job.merkle_root, 0x20000004, job.nbits, job.ntime)
    reply = NonceReply(0x01020304, 0, 0x18, version_bits=0x0ABC)
    assert rolled_version(0x20000004, 0x0ABC) == 0x20000004 | (0x0ABC << 13)
    header = block_header(job, reply)
    assert header[:4] == struct.pack("<I", 0x20000004 | (0x0ABC << 13))
    assert header[76:] == bytes([1, 2, 3, 4])
    digest = hashlib.sha256(hashlib.sha256(header).digest()).digest()
    assert check_share(job, reply).hash == digest
    assert difficulty_of_hash(digest) == DIFF1_TARGET / int.from_bytes(digest, "little")
    assert difficulty_of_hash(bytes(32)) == float("inf")


def test_core_and_chip_ids_in_both_byte_orders() -> None:
    n = 0x86420000  # d0..d3 = 86 42 00 00
    assert core_id(n) == 0x43
    assert chip_index(n, 256) == 0x21
    assert chip_index(n, 4) == 0  # 0x21 // 64
    assert chip_index(0xFFFE0000, 4) == 3
    le = NonceByteOrder.LITTLE_ENDIAN
    assert core_id(n, le) == 0 and chip_index(n, 256, le) == 0
    assert core_id(0x00004286, le) == 0x43 and chip_index(0x00004286, 256, le) == 0x21
    with pytest.raises(ValueError):
        chip_index(n, 0)
    result = check_share(block_125552_job(), NonceReply(n, 0, 0x1F), chips=256)
    assert (result.core, result.chip_index, result.job_id, result.small_core) == (0x43, 0x21, 0x18, 7)


@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF)), min_size=1, max_size=40),
    st.integers(0, 2**32 - 1),
)
def test_batch_path_agrees_with_scalar(pairs: list[tuple[int, int]], version: int) -> None:
    base = block_125552_job()
    job = JobFrame(base.job_id, base.prev_block_hash, base.merkle_root, version, base.nbits, base.ntime)
    nonces = np.array([p[0] for p in pairs], dtype=np.uint32)
    vbits = np.array([p[1] for p in pairs], dtype=np.uint16)
    got = share_difficulties(job, nonces, vbits)
    want = [share_difficulty(job, NonceReply(n, 0, 0, v)) for n, v in pairs]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_batch_path_on_the_real_block_and_shapes() -> None:
    job, reply = block_125552_job(), block_125552_reply()
    got = share_difficulties(job, np.array([reply.nonce, reply.nonce ^ 1], dtype=np.uint32))
    assert got[0] == pytest.approx(DIFF1_TARGET / int(BLOCK_HASH_DISPLAY, 16), rel=1e-12)
    assert got[1] < 1e-3
    assert share_difficulties(job, np.zeros(0, dtype=np.uint32)).shape == (0,)
    with pytest.raises(ValueError):
        share_difficulties(job, np.zeros(3, dtype=np.uint32), np.zeros(2, dtype=np.uint16))


def test_batch_path_keeps_input_order_and_zero_bytes() -> None:
    """Nonces with trailing zero bytes and versions in no order: each result lands at its own index."""
    job = block_125552_job()
    nonces = np.array([0x12000000, 0, 0x00000100, 0xFFFFFFFF, 0x12000000, 0x00ABCD00], dtype=np.uint32)
    vbits = np.array([5, 0, 5, 0xFFFF, 0, 3], dtype=np.uint16)
    got = share_difficulties(job, nonces, vbits)
    want = [share_difficulty(job, NonceReply(int(n), 0, 0, int(v))) for n, v in zip(nonces, vbits)]
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert got[0] != got[4]  # same nonce, different rolled version
    one = share_difficulties(job, nonces, 7)  # one version for all
    assert one.tolist() == pytest.approx(
        [share_difficulty(job, NonceReply(int(n), 0, 0, 7)) for n in nonces], rel=1e-12
    )


def test_batch_sha256_is_sha256() -> None:
    """The batch path's SHA-256 (CPython's built-in one) hashes, copies and digests like hashlib's."""
    from drivers.share import _BATCH_SHA256

    header = bytes.fromhex(HEADER_HEX)
    mid = _BATCH_SHA256(header[:76])
    h = mid.copy()
    h.update(header[76:])
    assert _BATCH_SHA256(h.digest()).digest() == hashlib.sha256(hashlib.sha256(header).digest()).digest()
    assert mid.digest() == hashlib.sha256(header[:76]).digest()  # the copy left the midstate alone


def test_job_table() -> None:
    table = JobTable(max_jobs=2)
    a, b, c = (block_125552_job(i) for i in (0, 8, 16))
    table.add(a)
    table.add(b)
    assert table.get(0) is a and 8 in table and len(table) == 2
    table.add(c)  # the oldest id goes
    assert table.get(0) is None and table.get(16) is c
    newer_b = JobFrame(8, bytes(32), bytes(32), 2, 3, 4)
    table.add(newer_b)
    assert table.get(8) is newer_b and len(table) == 2
    table.clear()
    assert len(table) == 0
