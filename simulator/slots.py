"""Slot schedules on an in-process emulated chain: no pty, no daemon, emulated time only.

:class:`SlotRunner` drives a :class:`~simulator.chain.ChainCore` directly (host frames fed at exact emulated
times: one broadcast PLL0 write at the start of each slot) and returns the ground-truth nonces of each slot.
It is the fast path for dose-response studies of the planted dynamics (benchmarks/bench_detection.py): the
same chip model, plants and knobs as ``asicrc sim``, without the 25 ms of host time per slot the daemon path
needs (and without its timing jitter: a slot starts exactly at its write, plus the PLL relock dead time).

As on the daemon path, the chain starts from reset, at the steady temperature of its reset clock, and warms
towards that of the slots' clocks with the thermal time constant (~45 s) during the first slots.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.frames import JobFrame, write_reg
from simulator.chain import PHYSICS_STEP_S, ChainCore, Knobs
from simulator.chip import REG_PLL0, REG_TICKET_MASK
from simulator.mining import PLL_REF_HZ
from simulator.physics import PhysicsParams
from simulator.plant import PlantSpec

#: Difficulty scale for the runner: the share search costs ~1 hash per nonce (validity is ground truth).
RUNNER_DIFFICULTY_SCALE = 2.0**-32
#: Emulated time (s) between bring-up and the first slot.
SETTLE_S = 0.5


@dataclass(frozen=True, slots=True)
class SlotNonces:
    """Nonces of one slot: times (ns from the runner's start), chip index, big-core id, validity, and the
    chip temperatures (C) at the slot's start."""

    t_ns: npt.NDArray[np.int64]
    chip: npt.NDArray[np.int16]
    core: npt.NDArray[np.int16]
    valid: npt.NDArray[np.bool_]
    temperature_c: npt.NDArray[np.float64]
    start_ns: int
    duration_ns: int


@functools.lru_cache(maxsize=65536)
def pll_register(freq_mhz_x100: int) -> int:
    """PLL0 value closest to ``freq_mhz_x100 / 100`` MHz (refdiv 1-2, fb_div <= 255, postdivs 1-7)."""
    f = freq_mhz_x100 / 100 * 1e6
    best = (np.inf, 0)
    for ref in (1, 2):
        for p1 in range(1, 8):
            for p2 in range(1, p1 + 1):
                fb = round(f * ref * p1 * p2 / PLL_REF_HZ)
                if not 16 <= fb <= 255:
                    continue
                err = abs(PLL_REF_HZ * fb / (ref * p1 * p2) - f)
                if err < best[0]:
                    best = (err, (fb << 16) | (ref << 8) | ((p1 - 1) << 4) | (p2 - 1))
    if best[1] == 0:
        raise ValueError(f"no PLL setting for {freq_mhz_x100 / 100} MHz")
    return best[1]


def ticket_mask_register(difficulty: int) -> int:
    """Ticket mask for ``difficulty`` (a power of two): 2^k - 1 with each byte bit-reversed."""
    if difficulty < 1 or difficulty & (difficulty - 1):
        raise ValueError(f"ticket difficulty must be a power of two >= 1, got {difficulty}")
    mask = difficulty - 1
    return int.from_bytes(bytes(int(f"{b:08b}"[::-1], 2) for b in mask.to_bytes(4, "big")), "big")


class SlotRunner:
    """One emulated chain (``chips``, ``seed``) at ``voltage_v`` and ``ticket_diff``, run slot by slot.

    ``step_s``: physics grid (s, at least the chain's 10 ms); a coarser grid keeps long slots cheap."""

    def __init__(
        self,
        chips: int,
        seed: int,
        *,
        plants: tuple[PlantSpec, ...] = (),
        knobs: Knobs | None = None,
        params: PhysicsParams | None = None,
        voltage_v: float = 1.2,
        ticket_diff: int = 1,
        step_s: float = PHYSICS_STEP_S,
    ) -> None:
        self.n_chips = chips
        self.core = ChainCore(
            chips,
            seed,
            params=params,
            knobs=knobs,
            difficulty_scale=RUNNER_DIFFICULTY_SCALE,
            truth_only=True,
            plants=plants,
            physics_step_s=max(step_s, PHYSICS_STEP_S),
        )
        c = self.core
        c.set_voltage(voltage_v, 0.0)
        c.feed(write_reg(REG_TICKET_MASK, ticket_mask_register(ticket_diff)).encode(), 0.0)
        c.feed(self._pll(485.0), 0.0)
        job = JobFrame(0x08, bytes(range(32)), bytes(range(32, 64)), 0x20000000, 0x1703A30C, 0x64000000)
        c.feed(job.encode(), 0.0)
        self.t = SETTLE_S
        c.advance(self.t)
        c.nonce_log.clear()

    @staticmethod
    def _pll(freq_mhz: float) -> bytes:
        return write_reg(REG_PLL0, pll_register(round(freq_mhz * 100))).encode()

    def run(self, freq_mhz: Sequence[float] | npt.NDArray[np.float64], slot_s: float) -> list[SlotNonces]:
        """One broadcast clock setting per slot of ``slot_s`` emulated seconds; the nonces of each slot."""
        c = self.core
        f = np.asarray(freq_mhz, dtype=np.float64)
        if f.ndim == 2:
            f = f.mean(axis=1)
        bounds = self.t + slot_s * np.arange(len(f) + 1)
        temps = np.zeros((len(f), self.n_chips))
        for k, fk in enumerate(f):
            c.feed(self._pll(float(fk)), float(bounds[k]))
            temps[k] = c.physics.temp_c
            c.advance(float(bounds[k + 1]))
        self.t = float(bounds[-1])
        log, c.nonce_log = c.nonce_log, []
        t = np.array([r.t for r in log], dtype=np.float64)
        chip = np.array([r.chip for r in log], dtype=np.int16)
        core = np.array([(r.nonce >> 25) & 0x7F for r in log], dtype=np.int16)
        valid = np.array([r.valid for r in log], dtype=bool)
        order = np.argsort(t, kind="stable")
        t, chip, core, valid = t[order], chip[order], core[order], valid[order]
        edges = np.searchsorted(t, bounds, side="left")
        out = []
        for k in range(len(f)):
            a, b = int(edges[k]), int(edges[k + 1])
            out.append(
                SlotNonces(
                    np.round(t[a:b] * 1e9).astype(np.int64),
                    chip[a:b],
                    core[a:b],
                    valid[a:b],
                    temps[k].copy(),
                    round(bounds[k] * 1e9),
                    round(slot_s * 1e9),
                )
            )
        return out
