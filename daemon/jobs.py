"""Synthetic work for the chips: random merkle roots, version rolling, rotation on an interval.

The daemon does not mine for a pool; it only needs the chips hashing so their nonces carry timing. Every job
is remembered in a :class:`drivers.share.JobTable` so each returned nonce can be checked (share difficulty,
valid flag). Job ids step (id + 8) mod 128 like ESP-Miner (16 slots, multiples of 8).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import numpy as np

from drivers.frames import JobFrame
from drivers.share import JobTable, share_difficulties

#: Block version with BIP320 rolling room (bits 13-28 rolled by the chip).
JOB_VERSION = 0x20000000
#: nbits of difficulty 1 (the chip ignores it for reporting; kept realistic for the header).
NBITS_DIFF1 = 0x1D00FFFF
#: ESP-Miner's job id step and modulus (docs/protocol.md "Job ids").
JOB_ID_STEP = 8
JOB_ID_MOD = 128


class JobSource:
    """Makes synthetic jobs; ``seed`` makes the merkle roots reproducible. ``wall`` gives ntime (unix s)."""

    def __init__(self, seed: int = 0, *, wall: Callable[[], float] = time.time) -> None:
        self._rng = random.Random(seed)
        self._wall = wall
        self._next_id = 0
        self.prev_hash = self._rng.randbytes(32)
        self.table = JobTable()
        self.made = 0

    def next_job(self) -> JobFrame:
        """A new job with a random merkle root; remembered in :attr:`table`."""
        job = JobFrame(
            job_id=self._next_id,
            prev_block_hash=self.prev_hash,
            merkle_root=self._rng.randbytes(32),
            version=JOB_VERSION,
            nbits=NBITS_DIFF1,
            ntime=int(self._wall()) & 0xFFFFFFFF,
        )
        self._next_id = (self._next_id + JOB_ID_STEP) % JOB_ID_MOD
        self.table.add(job)
        self.made += 1
        return job

    def reset(self) -> None:
        """Forget every job (the chips were reset and hold none)."""
        self.table.clear()

    def check(self, job_ids: np.ndarray, nonces: np.ndarray, version_bits: np.ndarray) -> np.ndarray:
        """Share difficulty per nonce (float64; 0 where the job is unknown), grouped by job id."""
        out = np.zeros(len(nonces), dtype=np.float64)
        if len(nonces) == 0:
            return out
        for jid in np.unique(job_ids).tolist():
            job = self.table.get(int(jid))
            if job is None:
                continue
            sel = job_ids == jid
            out[sel] = share_difficulties(job, nonces[sel], version_bits[sel])
        return out
