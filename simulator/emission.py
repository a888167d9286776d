"""What the emulated chips emit and when: nonce arrival times and the bytes of each nonce reply.

:class:`Arrivals` integrates every chip's nonce point process exactly at piecewise-constant rates (the chain
changes rates only at physics grid points and host commands): each chip carries its remaining
rate-integrated time to the next nonce (its hazard), so a run depends on the seed and the command times,
not on how often the chain is advanced. :class:`ReplyMaker` builds the reply bytes of one nonce: a real
share search against the job (docs/protocol.md §3) or, for the firehose, random replies from a cached pool.
Both draw from the chain's per-chip random streams, in the order the chain calls them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.chip import ChipState
from simulator.mining import Job, NonceSearcher, encode_reply, share_threshold

#: ``emit(chip, t)``: one nonce of chip ``chip`` at simulated time ``t`` (s).
Emit = Callable[[int, float], None]


@dataclass(slots=True)
class NonceRecord:
    """Ground truth of one emitted nonce (kept when ``record_nonces``): time (s), chip, nonce, validity."""

    t: float
    chip: int
    nonce: int
    valid: bool


class Arrivals:
    """Per-chip nonce arrivals: unit-exponential intervals in rate-integrated time (EAR(1)-correlated
    when ``serial_correlation`` > 0), a non-paralysable ``dead_time_s`` after each nonce, PLL-relock holds."""

    def __init__(self, rngs: list[random.Random], dead_time_s: float = 0.0, serial_correlation: float = 0.0):
        self.rngs = rngs
        self.dead_time_s = dead_time_s
        self.serial_correlation = serial_correlation
        self.hazard = np.array([r.expovariate(1.0) for r in rngs])
        self._last_draw = self.hazard.copy()  # the previous unit interval per chip (serial correlation)
        #: Per chip: no nonce before this time (s): dead time or a PLL relock.
        self.dead_until = np.zeros(len(rngs))

    def hold(self, chip: int, until: float) -> None:
        """Chip ``chip`` emits nothing before ``until`` (s)."""
        self.dead_until[chip] = max(self.dead_until[chip], until)

    def next_time(self, rate: np.ndarray, t: float) -> float:
        """Earliest next nonce (s) of any chip if ``rate`` (1/s per chip) holds from ``t``; inf if none."""
        active = rate > 0
        if not active.any():
            return math.inf
        start = np.maximum(self.dead_until[active], t)
        return max(float((start + self.hazard[active] / rate[active]).min()), t)

    def consume(self, rate: np.ndarray, t0: float, t1: float, emit: Emit) -> None:
        """Integrate the hazards over ``[t0, t1)`` at ``rate``, calling ``emit(chip, t)`` for every nonce."""
        start = np.maximum(self.dead_until, t0)
        h = rate * np.maximum(t1 - start, 0.0)
        fire = (h >= self.hazard) & (rate > 0)
        self.hazard -= np.where(fire, 0.0, h)
        for i in np.flatnonzero(fire):
            self._fire_chip(int(i), float(rate[i]), float(start[i]), t1, emit)

    def _fire_chip(
        self, i: int, rate: float, t: float, t1: float, emit: Callable[[int, float], None]
    ) -> None:
        """Emit chip ``i``'s nonces in ``[t, t1)``; ``t`` is where its hazard clock starts in this segment."""
        rng = self.rngs[i]
        dead = self.dead_time_s
        e = float(self.hazard[i])
        while True:
            te = t + e / rate
            if te >= t1:
                e -= (t1 - t) * rate
                break
            emit(i, te)
            e = self._next_unit_interval(i, rng)
            t = te
            if dead > 0:
                t += dead
                if t >= t1:
                    self.dead_until[i] = t
                    break
        self.hazard[i] = e

    def _next_unit_interval(self, i: int, rng: random.Random) -> float:
        """Chip ``i``'s next interval in rate-integrated time: a unit exponential, or EAR(1)."""
        rho = self.serial_correlation
        if rho <= 0:
            return rng.expovariate(1.0)
        e = rho * float(self._last_draw[i])
        if rng.random() >= rho:
            e += rng.expovariate(1.0)
        self._last_draw[i] = e
        return e


class ReplyMaker:
    """Reply bytes of one nonce per chip, from the chips' random streams ``rngs``."""

    def __init__(self, rngs: list[random.Random], difficulty_scale: float) -> None:
        self.rngs = rngs
        self.difficulty_scale = difficulty_scale
        self._searchers = [NonceSearcher(r) for r in rngs]
        self._thresholds: dict[int, int] = {}
        self._pool: dict[tuple[int, int, int, int], list[bytes]] = {}

    def _threshold(self, tdiff: int) -> int:
        thr = self._thresholds.get(tdiff)
        if thr is None:
            thr = share_threshold(tdiff, self.difficulty_scale)
            self._thresholds[tdiff] = thr
        return thr

    def share(self, chip: ChipState, job: Job, valid: bool, small: int) -> tuple[int, bytes]:
        """``(nonce, reply)`` of a nonce of ``job`` meeting (``valid``) or failing the chip's ticket."""
        nonce, field_, _ = self._searchers[chip.index].find(
            job, chip.vmask, chip.address, self._threshold(chip.ticket_diff), valid
        )
        b7 = (job.job_id & 0xF8) | small
        return nonce, encode_reply(nonce.to_bytes(4, "big"), 0, b7, field_, True, chip.reply_len)

    def firehose(self, chip: ChipState, job_id: int, small: int) -> bytes:
        """Random (NOT share-valid) nonce reply from a cached pool per (address, job, length, small core)."""
        key = (chip.address, job_id, chip.reply_len, small)
        pool = self._pool.get(key)
        rng = self.rngs[chip.index]
        if pool is None:
            pool = []
            for _ in range(64):
                nonce = (rng.randrange(112) << 25) | (chip.address << 17) | rng.getrandbits(17)
                field_ = rng.getrandbits(16) & (chip.vmask >> 13)
                b7 = (job_id & 0xF8) | small
                pool.append(encode_reply(nonce.to_bytes(4, "big"), 0, b7, field_, True, chip.reply_len))
            self._pool[key] = pool
        return pool[rng.getrandbits(6)]
