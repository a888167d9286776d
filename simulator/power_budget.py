"""The emulator's chain current at a steady operating point, from its power model (simulator/physics.py).

Used to pick operating points a single-phase regulator can supply (docs/emulator.md "Power budget"): the
emulated TPS546 is configured as ESP-Miner's single-phase boards (IOUT_OC_WARN 25 A, IOUT_OC_FAULT 30 A,
latch-off) and latches its output off above the fault limit, so a plan for several chips must stay below it.
"""

from __future__ import annotations

import numpy as np

from simulator.physics import ChainPhysics, PhysicsParams


def chain_current_a(
    chips: int,
    volts: float,
    freq_mhz: float,
    *,
    seed: int = 0,
    fan_duty: float = 1.0,
    params: PhysicsParams | None = None,
) -> float:
    """Steady-state output current (A) of an emulated chain of ``chips`` at ``volts`` (V) and ``freq_mhz``
    (MHz), chips at their settled temperature with the fan at ``fan_duty`` (0-1; the daemon runs 100 %)."""
    if chips < 1 or volts <= 0.0 or freq_mhz <= 0.0:
        raise ValueError(f"need chips >= 1, volts > 0, freq_mhz > 0; got {chips}, {volts}, {freq_mhz}")
    phys = ChainPhysics(params or PhysicsParams(), chips, seed)
    phys.volts = phys.v_target = volts
    phys.fan_duty = fan_duty
    f = np.full(chips, freq_mhz * 1e6)
    phys.settle(f)
    return float(phys.power_w(f).sum()) / volts


def max_freq_mhz(
    chips: int,
    volts: float,
    limit_a: float,
    *,
    lo_mhz: float = 50.0,
    hi_mhz: float = 1000.0,
    step_mhz: float = 5.0,
    seed: int = 0,
) -> float | None:
    """The highest frequency on a ``step_mhz`` grid in [lo_mhz, hi_mhz] whose :func:`chain_current_a` stays
    below ``limit_a`` (A); None when even ``lo_mhz`` draws more."""
    best = None
    f = lo_mhz
    while f <= hi_mhz + 1e-9:
        if chain_current_a(chips, volts, f, seed=seed) >= limit_a:
            break
        best = f
        f += step_mhz
    return best
