"""Synthetic work for the chips: random merkle roots, version rolling, rotation on an interval.

The daemon does not mine for a pool; it only needs the chips hashing so their nonces carry timing. Every job
is remembered in a :class:`drivers.share.JobTable` so each returned nonce can be checked (share difficulty,
valid flag). Job ids step (id + 8) mod 128 like ESP-Miner (16 slots, multiples of 8).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable

from drivers.frames import JobFrame
from drivers.share import JobTable

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


async def feed_jobs(
    send: Callable[[JobFrame], Awaitable[None]],
    jobs: JobSource,
    held: Callable[[], bool],
    interval_s: float,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Send a new job every ``interval_s`` while the chips are not held in reset (runs until cancelled)."""
    while True:
        if not held():
            await send(jobs.next_job())
        await sleep(interval_s)
