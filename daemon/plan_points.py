"""A plan's run order: sweep points (grid or list, repeats, seeded shuffle), their fingerprint, and the
modulation levels of a ``modulate`` plan. Pure functions of a :class:`~daemon.config.PlanConfig`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass

import numpy as np

from daemon.config import PlanConfig
from daemon.safety import Setpoint


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One sweep point; ``index`` is its position in the (possibly shuffled) run order."""

    index: int
    voltage_v: float
    freq_mhz: float
    ticket_diff: float
    repeat: int = 0

    @property
    def setpoint(self) -> Setpoint:
        return Setpoint(self.voltage_v, self.freq_mhz, self.ticket_diff)


def sweep_points(plan: PlanConfig) -> list[SweepPoint]:
    """The run order of a sweep: grid (voltage-major product) or list, times ``repeats``; each repeat is
    shuffled with ``random.Random(seed)`` when ``shuffle`` (reproducible for a given seed)."""
    if plan.points:
        base = [(float(p[0]), float(p[1]), float(p[2])) for p in plan.points]
    else:
        base = list(itertools.product(plan.voltage_v, plan.freq_mhz, plan.ticket_diff))
    rng = random.Random(plan.seed)
    out: list[SweepPoint] = []
    for r in range(plan.repeats):
        order = list(base)
        if plan.shuffle:
            rng.shuffle(order)
        start = len(out)
        out.extend(SweepPoint(start + i, v, f, d, r) for i, (v, f, d) in enumerate(order))
    return out


def fingerprint(points: list[SweepPoint]) -> str:
    """Identity of a run order: progress is resumed only for the same points in the same order."""
    text = json.dumps([(p.voltage_v, p.freq_mhz, p.ticket_diff, p.repeat) for p in points])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def modulation_levels(plan: PlanConfig) -> np.ndarray:
    """Levels 0..1, shape (symbols, sub_slots): 0.5 + (u - 0.5) * mask, mask = random sign * U(0.5, 1)."""
    rng = np.random.default_rng(plan.seed)
    mask = rng.choice([-1.0, 1.0], plan.sub_slots) * rng.uniform(0.5, 1.0, plan.sub_slots)
    u = np.asarray(plan.input, dtype=np.float64)[:, None]
    return np.clip(0.5 + (u - 0.5) * mask[None, :], 0.0, 1.0)
