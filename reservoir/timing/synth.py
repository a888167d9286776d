"""Event streams with known truth, for calibration tests and benchmarks (docs/methods.md, "Artefacts that fake
structure"). Every generator takes a numpy Generator and returns sorted int64 ns timestamps."""

from __future__ import annotations

from dataclasses import dataclass

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


def link_serialised(t: I64, wire_s: float) -> I64:
    """Wire-end times of replies emitted at ``t`` through a UART that sends one reply per ``wire_s`` (a reply
    that finds the wire busy waits): a link dead time of one reply's wire time (110 us for 11 bytes at
    1 Mbaud), events delayed, never lost."""
    return delayed(t + int(wire_s * NS), wire_s)


@dataclass(frozen=True)
class Delivered:
    """Events as a host reader records them (docs/recording-format.md): ``t_ns`` the (corrected) event time,
    ``t_host_ns`` the time of the read that delivered it, ``read_id`` that read's number; int64 arrays."""

    t_ns: I64
    t_host_ns: I64
    read_id: I64


#: Serial wire time per byte (ns) at 1 Mbaud, 10 bits a byte; an 11-byte reply takes 110 us.
WIRE_NS_PER_BYTE_1MBAUD = 10_000
#: Cap of the daemon's serialization correction (ns), as daemon/supervisor.py applies it.
MAX_SPACING_NS = 1_000_000


def deliver_reads(
    t: I64,
    latency_s: float,
    rng: np.random.Generator,
    *,
    spacing_ns: int = 0,
    latency: str = "exponential",
) -> Delivered:
    """Deliver true event times ``t`` (sorted int64 ns) through a busy serial reader.

    The reader sleeps until data arrive; the first event not yet read wakes it after a scheduling latency
    (``latency="exponential"``: drawn per read, mean ``latency_s``; ``"fixed"``: exactly ``latency_s``), and
    the read returns every event that arrived by then, all stamped with the read time (``t_host_ns``).
    ``spacing_ns`` > 0 mimics the daemon's serialization correction: the k-th of m frames of one read gets
    ``read time - (m - 1 - k) x spacing_ns`` (110,000 ns: one 11-byte reply at 1 Mbaud), capped at
    :data:`MAX_SPACING_NS` and never before the previous read; ``spacing_ns=0`` keeps ``t_ns = t_host_ns``.
    """
    n = len(t)
    host = np.empty(n, dtype=np.int64)
    rid = np.empty(n, dtype=np.int64)
    lat = latency_s * NS
    # per-read latencies drawn in advance (at most one read per event)
    lats = rng.exponential(lat, n) if latency == "exponential" else np.full(n, lat)
    i = k = 0
    while i < n:
        r = int(t[i]) + int(lats[k])
        j = int(np.searchsorted(t, r, side="right"))
        host[i:j] = r
        rid[i:j] = k
        i, k = j, k + 1
    if spacing_ns <= 0:
        return Delivered(host.copy(), host, rid)
    # frames after this one in its read (the daemon's "bytes after the frame", in replies)
    last = np.flatnonzero(np.diff(rid, append=rid[-1] + 1))  # index of the last frame of each read
    after = last[rid] - np.arange(n)
    first_of_read = np.concatenate(([0], last[:-1] + 1))
    prev_read = np.concatenate(([np.iinfo(np.int64).min], host[first_of_read][:-1]))[rid]
    corr = np.minimum(after * spacing_ns, MAX_SPACING_NS)
    t_ns = np.minimum(host, np.maximum(host - corr, prev_read))
    return Delivered(t_ns.astype(np.int64), host, rid)
