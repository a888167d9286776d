"""Event streams with known truth, for calibration tests and benchmarks (docs/science.md, "Artefacts that fake
structure"). Every generator takes a numpy Generator and returns sorted int64 ns timestamps."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
NS = 1_000_000_000


def poisson(n: int, rate_hz: float, rng: np.random.Generator) -> I64:
    """n events of a homogeneous Poisson process at ``rate_hz``."""
    return np.cumsum(rng.exponential(NS / rate_hz, n)).astype(np.int64)


def grid(t: I64, quantum_s: float, rng: np.random.Generator, jitter_s: float = 0.0) -> I64:
    """Timestamps delivered on a grid: each event stamped at the next multiple of ``quantum_s`` (FTDI latency
    timer), plus optional Gaussian jitter (s) of the stamping."""
    q = int(quantum_s * NS)
    out = (t // q + 1) * q
    if jitter_s > 0:
        out = out + rng.normal(0.0, jitter_s * NS, len(t)).astype(np.int64)
    return np.sort(out)


def polling(t: I64, period_s: tuple[float, float], rng: np.random.Generator) -> I64:
    """The host polls at intervals drawn uniformly from ``period_s`` (lo, hi) and stamps every event
    waiting at the poll with the poll time (batch delivery)."""
    lo, hi = period_s
    span = int(t[-1]) + int(hi * NS)
    polls = np.cumsum(rng.uniform(lo * NS, hi * NS, int(span / (lo * NS)) + 2)).astype(np.int64)
    idx = np.searchsorted(polls, t, side="left")
    return polls[idx]


def dead_time(n: int, rate_hz: float, dead_s: float, rng: np.random.Generator) -> I64:
    """n events of a Poisson process thinned by a non-paralysable dead time: an event within ``dead_s`` of the
    last kept event is lost (intervals = dead_s + Exp(rate))."""
    gaps = rng.exponential(NS / rate_hz, n) + dead_s * NS
    return np.cumsum(gaps).astype(np.int64)


def delayed(t: I64, dead_s: float) -> I64:
    """A host that delivers at most one event per ``dead_s``: events arriving sooner are delayed, not lost."""
    d = int(dead_s * NS)
    out = t.copy()
    for i in range(1, len(out)):  # sequential by nature; only used on test-sized streams
        if out[i] < out[i - 1] + d:
            out[i] = out[i - 1] + d
    return out


def modulated(n: int, rate_hz: float, amplitude: float, period_s: float, rng: np.random.Generator) -> I64:
    """n events of an inhomogeneous Poisson process with rate r (1 + a sin(2 pi t / P + phi)), random phase,
    by thinning. A long period (>> 10 mean intervals) is a slow drift, a short one a periodic modulation."""
    phi = rng.uniform(0, 2 * np.pi)
    rmax = rate_hz * (1 + abs(amplitude))
    out: list[I64] = []
    have = 0
    t0 = 0
    while have < n:
        m = int((n - have) * (1 + abs(amplitude)) * 1.2) + 100
        cand = t0 + np.cumsum(rng.exponential(NS / rmax, m)).astype(np.int64)
        lam = rate_hz * (1 + amplitude * np.sin(2 * np.pi * cand / (period_s * NS) + phi))
        keep = cand[rng.uniform(0, rmax, m) < lam]
        out.append(keep)
        have += len(keep)
        t0 = int(cand[-1])
    return np.concatenate(out)[:n]


def ear1(n: int, rate_hz: float, rho: float, rng: np.random.Generator) -> I64:
    """n events whose intervals are an exponential AR(1) (Lawrance & Lewis 1977): exponential marginal at
    ``rate_hz``, lag-k correlation rho^k: short-range serial correlation without a rate drift."""
    mean = NS / rate_hz
    e = rng.exponential(mean, n)
    keep = rng.uniform(size=n) >= rho  # B_n ~ Bernoulli(1 - rho)
    x = np.empty(n)
    prev = e[0]
    for i in range(n):  # sequential recurrence; test-sized streams only
        prev = rho * prev + (e[i] if keep[i] else 0.0)
        x[i] = prev
    return np.cumsum(x).astype(np.int64)
