"""Calibration of the verdict on known truth delivered through a busy serial reader (docs/analyze.md).

A source (Poisson, a 5 ms dead time, a +-40 % modulation with a 2 s period, short-range serial correlation,
a slow drift) at ~100 events/s, 20,000 events (~200 s, as a held operating point of the emulator), goes
through a 1 Mbaud UART (one 11-byte reply per 110 us: :func:`synth.link_serialised`) and then, unless the
latency is 0, through reads with an exponential scheduling latency, with or without the daemon's
serialization spacing (:func:`synth.deliver_reads`). Each delivered stream is analysed with its ``read_id``
column, as ``asicrc analyze`` does with a recording, and the call is checked against the truth:

- ``poisson``: ``poisson`` or ``artifact`` (the host's structure named as such, nothing beyond it);
- every planted kind: ``non-poisson`` with that kind (artefacts may be listed beside it).

Used by ``benchmarks/bench_stats_calibration.py`` (the full table) and the test suite (a seeded subset).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reservoir.timing import synth
from reservoir.timing.verdict import StreamResult, analyze_stream

I64 = NDArray[np.int64]

RATE_HZ = 100.0
N_EVENTS = 20_000
#: One 11-byte reply at 1 Mbaud, 10 bits a byte (s); also the daemon's spacing of the frames of one read.
WIRE_S = 110e-6
SPACING_NS = 110_000
#: Mean scheduling latencies (s) of the calibration table; 0 = the link's wire-end times, no reads.
LATENCIES_S: tuple[float, ...] = (0.0, 1e-4, 5e-4, 1e-3, 2e-3, 5e-3)

Source = Callable[[int, np.random.Generator], I64]

#: name -> (generator of n events, the correct call's (verdict, kind); kind None for poisson).
SOURCES: dict[str, tuple[Source, str | None]] = {
    "poisson": (lambda n, rng: synth.poisson(n, RATE_HZ, rng), None),
    # intervals 5 ms + Exp(5 ms): 100 events/s, CV 0.5 (a chip that cannot report twice within 5 ms)
    "dead-time-5ms": (lambda n, rng: synth.dead_time(n, 2 * RATE_HZ, 0.005, rng), "regular/dead-time"),
    "modulation-40%-2s": (
        lambda n, rng: synth.modulated(n, RATE_HZ, 0.4, 2.0, rng),
        "modulation",
    ),
    # +-50 % over a 400 s period: the ~200 s stream sees half a period, a slow drift
    "drift-50%-400s": (
        lambda n, rng: synth.modulated(n, RATE_HZ, 0.5, 400.0, rng),
        "rate-drift",
    ),
    # exponential AR(1) intervals, lag-1 correlation 0.2
    "serial-correlation": (lambda n, rng: synth.ear1(n, RATE_HZ, 0.2, rng), "serial-correlation"),
}


@dataclass(frozen=True)
class Delivery:
    """How the host sees the stream: mean read latency (s; 0: no reads), spacing of a read's frames (ns)."""

    latency_s: float
    spacing_ns: int = 0

    @property
    def label(self) -> str:
        if self.latency_s <= 0:
            return "wire-end times (1 Mbaud link, no reads)"
        sp = f"spacing {self.spacing_ns / 1e3:g} us" if self.spacing_ns else "no spacing"
        return f"reads, latency {self.latency_s * 1e3:g} ms, {sp}"


def deliveries(latencies: Sequence[float] = LATENCIES_S) -> list[Delivery]:
    """Every latency with spacing off and on (latency 0 once: there are no reads to space)."""
    out: list[Delivery] = []
    for lat in latencies:
        out.append(Delivery(lat, 0))
        if lat > 0:
            out.append(Delivery(lat, SPACING_NS))
    return out


def delivered(
    source: str, delivery: Delivery, rng: np.random.Generator, n: int = N_EVENTS
) -> tuple[I64, I64 | None]:
    """(t_ns, read_id or None) of ``n`` events of ``source`` through the link and ``delivery``'s reads."""
    t = synth.link_serialised(SOURCES[source][0](n, rng), WIRE_S)
    if delivery.latency_s <= 0:
        return t, None
    d = synth.deliver_reads(t, delivery.latency_s, rng, spacing_ns=delivery.spacing_ns)
    return d.t_ns, d.read_id


def correct(source: str, r: StreamResult) -> bool:
    """True when the call on a stream of ``source`` is right (see the module docstring)."""
    kind = SOURCES[source][1]
    if kind is None:
        return r.verdict in ("poisson", "artifact")
    return r.verdict == "non-poisson" and r.kind == kind


def analyse(source: str, delivery: Delivery, seed: int, n: int = N_EVENTS) -> StreamResult:
    """One seeded calibration stream, analysed as ``asicrc analyze`` would (no interval-shuffle band)."""
    rng = np.random.default_rng([4013, seed, sorted(SOURCES).index(source), int(delivery.latency_s * 1e7)])
    t, rid = delivered(source, delivery, rng, n)
    return analyze_stream(t, read_ids=rid, seed=seed, surrogates=0)


def hits(source: str, delivery: Delivery, seeds: Sequence[int], n: int = N_EVENTS) -> int:
    """How many of ``seeds`` are called right."""
    return sum(correct(source, analyse(source, delivery, s, n)) for s in seeds)
