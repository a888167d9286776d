"""Share check: rebuild the block header for a nonce reply and its job, double SHA-256, share difficulty.

Header (80 bytes, ``docs/protocol.md``): rolled version (LE) || prev hash || merkle root (both in header
byte order,
i.e. the job frame's word-reversed bytes un-reversed) || ntime (LE) || nbits (LE) || the 4 nonce bytes
exactly as received (reply bytes d0..d3). Share difficulty = DIFF1_TARGET / int(hash read little-endian).

The batch path :func:`share_difficulties` feeds the first 76 header bytes to SHA-256 once per rolled version
(one block compressed, 12 bytes buffered) and reuses that state with ``copy()`` for every nonce: two
compressions per check instead of three. It groups the nonces by rolled version (one tight loop per group)
and uses CPython's built-in SHA-256 object when present: OpenSSL's ``hashlib.sha256`` pays a context
allocation per ``copy()``/``digest()`` that costs more than a SHA-NI compression, so the built-in one is
faster per check (benchmarks/bench_share.py). Difficulties come from the digests in one numpy expression.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drivers.chipmath import DIFF1_TARGET
from drivers.frames import JobFrame, NonceReply

#: Bits of the block version the chip rolls: rolled = version | (version_bits << 13) (docs/protocol.md).
VERSION_BITS_SHIFT = 13
HEADER_LEN = 80
#: Most jobs the chip can hold: job ids are multiples of 8 below 256 (ESP-Miner uses 16 of them below 128).
MAX_JOBS = 32


def _builtin_sha256() -> Callable[..., Any]:
    """CPython's own SHA-256 constructor (``_sha2`` from 3.12, ``_sha256`` before), else hashlib's."""
    for module, name in (("_sha2", "sha256"), ("_sha256", "sha256")):
        try:
            return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256  # pragma: no cover


#: SHA-256 constructor for the batch path: cheap copy()/digest() (no OpenSSL context per call).
_BATCH_SHA256: Callable[..., Any] = _builtin_sha256()


class NonceByteOrder(enum.Enum):
    """How to read core and chip ids from the nonce bytes d0..d3.

    ``ESP_MINER``: the nonce as a big-endian integer n; core = (n >> 25) & 0x7F, chip bits = (n >> 17) & 0xFF.
    ``LITTLE_ENDIAN``: the same bit fields of d0..d3 read as a little-endian integer.
    """

    ESP_MINER = "esp-miner"
    LITTLE_ENDIAN = "little-endian"


@dataclass(frozen=True, slots=True)
class ShareResult:
    """One checked nonce: ids, the rebuilt header, its hash (header byte order) and its difficulty."""

    job_id: int
    small_core: int
    core: int
    chip_index: int
    nonce: int
    version_bits: int
    rolled_version: int
    header: bytes
    hash: bytes
    difficulty: float

    @property
    def hash_hex(self) -> str:
        """The hash in the usual reversed display order (block explorers)."""
        return self.hash[::-1].hex()


def rolled_version(job_version: int, version_bits: int) -> int:
    """Block version the chip hashed: ``job_version | (version_bits << 13)`` (32-bit)."""
    return (job_version | ((version_bits & 0xFFFF) << VERSION_BITS_SHIFT)) & 0xFFFFFFFF


def block_header(job: JobFrame, reply: NonceReply) -> bytes:
    """The 80-byte block header a nonce reply stands for."""
    return job.header_prefix(rolled_version(job.version, reply.version_bits)) + reply.nonce_bytes


def sha256d(data: bytes) -> bytes:
    """Double SHA-256 (header byte order; reverse for display)."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def difficulty_of_hash(digest: bytes) -> float:
    """Share difficulty of a double-SHA-256 digest: DIFF1_TARGET / int(digest, little-endian); inf for 0."""
    value = int.from_bytes(digest, "little")
    return DIFF1_TARGET / value if value else float("inf")


def _id_bits(nonce: int, order: NonceByteOrder) -> int:
    if order is NonceByteOrder.LITTLE_ENDIAN:
        return int.from_bytes(nonce.to_bytes(4, "big"), "little")
    return nonce


def core_id(nonce: int, order: NonceByteOrder = NonceByteOrder.ESP_MINER) -> int:
    """Core id (0..127) of a nonce (``nonce`` = d0..d3 read big-endian, as in :class:`NonceReply`)."""
    return (_id_bits(nonce, order) >> 25) & 0x7F


def chip_index(nonce: int, chips: int, order: NonceByteOrder = NonceByteOrder.ESP_MINER) -> int:
    """Index (0..chips-1) of the chip that found ``nonce``: chip bits // (256 // chips)."""
    if not 1 <= chips <= 256:
        raise ValueError(f"chips must be 1..256, got {chips}")
    return ((_id_bits(nonce, order) >> 17) & 0xFF) // (256 // chips)


def check_share(
    job: JobFrame, reply: NonceReply, chips: int = 1, order: NonceByteOrder = NonceByteOrder.ESP_MINER
) -> ShareResult:
    """Rebuild the header for ``reply`` under ``job``, hash it and extract the ids."""
    rolled = rolled_version(job.version, reply.version_bits)
    header = job.header_prefix(rolled) + reply.nonce_bytes
    digest = sha256d(header)
    return ShareResult(
        job_id=reply.job_id,
        small_core=reply.small_core,
        core=core_id(reply.nonce, order),
        chip_index=chip_index(reply.nonce, chips, order),
        nonce=reply.nonce,
        version_bits=reply.version_bits,
        rolled_version=rolled,
        header=header,
        hash=digest,
        difficulty=difficulty_of_hash(digest),
    )


def share_difficulty(job: JobFrame, reply: NonceReply) -> float:
    """Share difficulty of one nonce reply under its job."""
    return difficulty_of_hash(sha256d(block_header(job, reply)))


def share_difficulties(
    job: JobFrame, nonces: npt.NDArray[np.uint32], version_bits: npt.NDArray[np.integer] | int = 0
) -> npt.NDArray[np.float64]:
    """Share difficulties of many nonces under one job (batch path, float64 each).

    ``nonces`` are d0..d3 read big-endian (``NonceReply.nonce`` / ``ReplyBatch.value``); ``version_bits``
    is an array of the same length or one value for all.
    Agrees with :func:`share_difficulty` to float64 rounding.
    """
    nonces = np.asarray(nonces, dtype=np.uint32).ravel()
    n = nonces.size
    if np.ndim(version_bits) == 0:
        vbits = np.full(n, int(version_bits), dtype=np.uint16)
    else:
        vbits = np.asarray(version_bits).astype(np.uint16, copy=False).ravel()
        if vbits.size != n:
            raise ValueError(f"version_bits has {vbits.size} entries for {n} nonces")
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    sha = _BATCH_SHA256
    # Group by rolled version (stable sort); per group one midstate: the first block compressed, the next
    # 12 header bytes buffered in the hash object. Nonce bytes as a list of 4-byte bytes, built in C.
    order = np.argsort(vbits, kind="stable")
    sorted_v = vbits[order]
    nonce_bytes: list[bytes] = nonces[order].astype(">u4").view("V4").tolist()
    starts = [*np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]]).tolist(), n]
    out: list[bytes] = []
    append = out.append
    for a, b in itertools.pairwise(starts):
        copy = sha(job.header_prefix(rolled_version(job.version, int(sorted_v[a])))).copy
        for nb in nonce_bytes[a:b]:
            h = copy()
            h.update(nb)
            append(sha(h.digest()).digest())
    limbs = np.frombuffer(b"".join(out), dtype="<u8").reshape(n, 4).astype(np.float64)
    value = limbs[:, 3] * 2.0**192 + limbs[:, 2] * 2.0**128 + limbs[:, 1] * 2.0**64 + limbs[:, 0]
    result = np.empty(n, dtype=np.float64)
    with np.errstate(divide="ignore"):
        result[order] = float(DIFF1_TARGET) / value
    return result


class JobTable:
    """Jobs by id, as the chip sees them: a newer job with the same id replaces the older one.

    Keeps at most ``max_jobs`` ids (oldest added dropped first).
    """

    def __init__(self, max_jobs: int = MAX_JOBS) -> None:
        self.max_jobs = max_jobs
        self._jobs: dict[int, JobFrame] = {}

    def add(self, job: JobFrame) -> None:
        """Remember ``job`` under its id (replacing any job with the same id)."""
        self._jobs.pop(job.job_id, None)
        self._jobs[job.job_id] = job
        while len(self._jobs) > self.max_jobs:
            del self._jobs[next(iter(self._jobs))]

    def get(self, job_id: int) -> JobFrame | None:
        """The job last sent with ``job_id``, or None."""
        return self._jobs.get(job_id)

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def clear(self) -> None:
        """Forget every job (after a chip reset)."""
        self._jobs.clear()

    def difficulties(
        self,
        job_ids: npt.NDArray[np.uint8],
        nonces: npt.NDArray[np.uint32],
        version_bits: npt.NDArray[np.uint16],
    ) -> npt.NDArray[np.float64]:
        """Share difficulty per nonce (float64; 0 where its job id is not held), grouped by job id."""
        out = np.zeros(len(nonces), dtype=np.float64)
        for jid in np.unique(job_ids).tolist():
            job = self._jobs.get(int(jid))
            if job is not None:
                sel = job_ids == jid
                out[sel] = share_difficulties(job, nonces[sel], version_bits[sel])
        return out
