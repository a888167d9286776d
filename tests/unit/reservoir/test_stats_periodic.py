"""Modulation or drift: the periodogram test against its local background (reservoir/timing/periodic.py)."""

from __future__ import annotations

import numpy as np

from reservoir.timing import core, synth
from reservoir.timing.periodic import PERIODIC_ALPHA, periodicity
from reservoir.timing.verdict import analyze_stream

RATE = 100.0
W = 0.1


def _counts(t_ns: np.ndarray) -> np.ndarray:
    return core.window_counts([t_ns], W)


def _ou_drift(n: int, amp: float, tau_s: float, rng: np.random.Generator) -> np.ndarray:
    """A Poisson stream whose log-rate is an Ornstein-Uhlenbeck walk (amplitude ``amp``, time ``tau_s``)."""
    dt = 0.01
    m = int(n / RATE / dt)
    a = dt / tau_s
    x = np.zeros(m)
    noise = rng.standard_normal(m)
    for i in range(1, m):
        x[i] = x[i - 1] * (1 - a) + amp * np.sqrt(2 * a) * noise[i]
    c = rng.poisson(RATE * np.exp(x) * dt)
    t = np.repeat(np.arange(m) * dt, c) + rng.random(int(c.sum())) * dt
    return np.sort(t * 1e9).astype(np.int64)


def test_poisson_and_drift_are_not_periodic() -> None:
    rng = np.random.default_rng(11)
    flat = [periodicity(_counts(synth.poisson(20_000, RATE, rng)), W).p for _ in range(20)]
    walk = [periodicity(_counts(_ou_drift(20_000, 0.4, 5.0, rng)), W).p for _ in range(10)]
    slow = periodicity(_counts(synth.modulated(20_000, RATE, 0.5, 400.0, rng)), W)  # half a cycle
    assert min(flat) > PERIODIC_ALPHA and min(walk) > PERIODIC_ALPHA and not slow.periodic


def test_a_modulation_is_periodic_with_its_period() -> None:
    rng = np.random.default_rng(12)
    per = periodicity(_counts(synth.modulated(2_000, RATE, 0.4, 2.0, rng)), W)
    assert per.periodic and abs(per.period_s - 2.0) < 0.2
    assert analyze_stream(synth.poisson(2_000, RATE, rng), surrogates=0).stats.rate_change == "rate-drift"


def test_too_short_or_constant_counts_claim_nothing() -> None:
    assert periodicity(np.ones(500), W).p == 1.0
    assert periodicity(np.arange(10.0), W).p == 1.0


def test_the_verdict_names_modulation_and_drift_apart() -> None:
    rng = np.random.default_rng(13)
    mod = analyze_stream(synth.modulated(20_000, RATE, 0.4, 2.0, rng), surrogates=0)
    drift = analyze_stream(_ou_drift(20_000, 0.4, 5.0, rng), surrogates=0)
    assert (mod.verdict, mod.kind) == ("non-poisson", "modulation")
    assert (drift.verdict, drift.kind) == ("non-poisson", "rate-drift")
    assert mod.to_json()["periodicity"]["period_s"] > 1.5
