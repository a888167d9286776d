"""Detectors of host-made timing structure: a timestamp quantum, polling / batch delivery, and dead time.

Each detector returns a :class:`Detection`: a p-value under the null "exponential intervals" (to enter the
stream's multiple-comparison family), a gate saying whether the effect is large enough to distort the
statistics, and the evidence as plain JSON-able numbers. Intervals are int64 ns.

Dead time is classified here too: a hole at small intervals followed by a pile-up of intervals just above it
means events were *delayed* (the host delivered them late), and a hole equal to a reply's wire time is the
UART serialising replies: both ``artifact``; any other hole means events never arrived or the source is
regular (``non-poisson``, kind ``regular/dead-time``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

I64 = NDArray[np.int64]

MS = 1_000_000  # ns per millisecond

#: Known host timestamp quanta (ns -> mechanism); docs/methods.md: FTDI latency timer 16 ms; Linux HZ ticks.
NAMED_QUANTA_NS: dict[int, str] = {
    1 * MS: "USB full-speed frame / 1 kHz timer tick",
    2 * MS: "FTDI latency timer setting",
    4 * MS: "Linux HZ=250 tick",
    8 * MS: "FTDI latency timer setting",
    10 * MS: "Linux HZ=100 tick",
    16 * MS: "FTDI latency timer default",
    32 * MS: "FTDI latency timer setting",
}
#: A quantum is searched between these multiples of the mean interval: finer ones cannot move the statistics,
#: coarser ones are polling (handled by the batch detector).
QUANTUM_MIN_REL = 1e-3
QUANTUM_MAX_REL = 0.5
#: Smallest distinct nonzero intervals tried as quantum candidates (besides the named ones).
QUANTUM_DATA_CANDIDATES = 16
#: Mean resultant length of interval phases needed to call a lattice (effect gate; smooth densities give
#: about 2*pi*rate*q/(2*pi) <= 0.08 in the searched range, a 16 ms grid gives 1).
QUANTUM_MIN_R = 0.3
#: Intervals used by the lattice test (a prefix; bounds the cost on 10^7 events).
QUANTUM_MAX_SAMPLES = 200_000
#: "Near-identical" timestamps: closer than this (ns) or 5 % of the mean interval, whichever is smaller.
#: 2 ms covers the wire time of a few 11-byte replies at 115200 baud (0.95 ms each, docs/protocol.md).
NEAR_ZERO_NS = 2 * MS
NEAR_ZERO_REL = 0.05
#: Batch effect gate: near-zero intervals must exceed their locally expected count this many times.
BATCH_MIN_RATIO = 2.0
#: Fewest in-read intervals on one value for the read-structure test to call batch delivery.
READ_MIN_COUNT = 5
#: Bin (ns) of the in-read interval values: the daemon's spacing is exact to the nanosecond; 1 us leaves room
#: for a baud that is not a round number.
ATOM_BIN_NS = 1000
#: Mean events per delivery above which a batch artefact is called polling rather than a fine quantum.
POLLING_MIN_BATCH = 1.5
#: Dead-time test uses the k-th smallest interval, k = 1 + n // this (tolerates a few stray short gaps).
DEADTIME_K_DIV = 2000
#: Pile-up check just above a dead time d: window width min(PILEUP_REL * d, 0.05 mean interval); a pile-up
#: is this many times the count a shifted exponential predicts.
PILEUP_REL = 0.1
PILEUP_MIN_RATIO = 3.0
#: Link bauds and reply sizes (docs/protocol.md: 9- or 11-byte replies; 115200 at reset, ~1 M and 3.125 M fast
#: UART) whose wire time (10 bits per byte) a dead time is compared with; a match within 5 % names the link.
LINK_BAUDS: tuple[float, ...] = (115_200.0, 1_000_000.0, 3_125_000.0)
REPLY_BYTES: tuple[int, ...] = (9, 11)
WIRE_MATCH_REL = 0.05


def wire_match(dead_s: float) -> str | None:
    """The reply size and baud whose wire time equals ``dead_s`` (within 5 %), if any."""
    for baud in LINK_BAUDS:
        for nbytes in REPLY_BYTES:
            wire = nbytes * 10 / baud
            if abs(dead_s - wire) <= WIRE_MATCH_REL * wire:
                return f"wire time of a {nbytes}-byte reply at {baud:g} baud ({wire * 1e3:.3g} ms)"
    return None


@dataclass(frozen=True)
class Detection:
    """One detector's outcome: ``p`` under the exponential null, ``gated`` when the effect is large enough."""

    name: str
    p: float
    gated: bool
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def candidate(self) -> bool:
        """True when the effect gate passed; significance is decided by the caller."""
        return self.gated


def quantum(gaps: I64) -> Detection:
    """Timestamp quantum: intervals sit on a lattice of multiples of q (gap-modulo-quantum, zero gaps).

    Candidates: :data:`NAMED_QUANTA_NS` and the smallest distinct nonzero intervals, in [1e-3, 0.5] x the
    mean interval. Test per candidate: the interval phases 2 pi (g mod q) / q against the phase law of an
    exponential (mean e^{i theta} = 1 / (1 - i 2 pi mean / q)); p = exp(-N |R - R0|^2), Bonferroni over
    candidates; gate: |R| >= :data:`QUANTUM_MIN_R`.
    """
    n = len(gaps)
    zero_frac = float(np.mean(gaps == 0)) if n else 0.0
    if n < 2:
        return Detection("timestamp-quantum", 1.0, False, {"zero_gap_fraction": zero_frac})
    mean = float(np.mean(gaps))
    qmin, qmax = QUANTUM_MIN_REL * mean, QUANTUM_MAX_REL * mean
    nz = gaps[gaps > 0]
    small = np.unique(
        np.partition(nz, min(len(nz) - 1, 4 * QUANTUM_DATA_CANDIDATES))[: 4 * QUANTUM_DATA_CANDIDATES]
    )
    data_c = [int(v) for v in small if qmin <= v <= qmax][:QUANTUM_DATA_CANDIDATES]
    cands = sorted({q for q in NAMED_QUANTA_NS if qmin <= q <= qmax} | set(data_c))
    if not cands:
        return Detection("timestamp-quantum", 1.0, False, {"zero_gap_fraction": zero_frac})
    g = gaps[:QUANTUM_MAX_SAMPLES]
    m = len(g)
    scored: list[tuple[float, float, int]] = []
    for q in cands:
        theta = (g % q).astype(np.float64) * (2.0 * np.pi / q)
        r = complex(float(np.mean(np.cos(theta))), float(np.mean(np.sin(theta))))
        r0 = 1.0 / complex(1.0, -2.0 * np.pi * mean / q)
        scored.append((abs(r), float(np.exp(-m * abs(r - r0) ** 2)), q))
    # a lattice of q is also one of q/k: report the coarsest candidate nearly as tight as the tightest
    r_max = max(s[0] for s in scored)
    r_abs, p_raw, q = max((s for s in scored if s[0] >= 0.9 * r_max), key=lambda s: s[2])
    on_lattice = float(np.mean(np.minimum(g % q, q - g % q) < 0.05 * q))
    ev: dict[str, Any] = {
        "quantum_ns": q,
        "quantum_s": q / 1e9,
        "mechanism": NAMED_QUANTA_NS.get(q, "unknown"),
        "resultant_length": round(r_abs, 4),
        "fraction_on_lattice": round(on_lattice, 4),
        "zero_gap_fraction": round(zero_frac, 5),
        "candidates_tried": len(cands),
        "quantum_x_rate": round(q / mean, 5),
    }
    return Detection("timestamp-quantum", min(1.0, p_raw * len(cands)), r_abs >= QUANTUM_MIN_R, ev)


def batches(gaps: I64, eps: int) -> I64:
    """Sizes of runs of events separated by intervals < eps ns (deliveries), in time order."""
    breaks = np.flatnonzero(gaps >= eps)
    edges = np.concatenate(([-1], breaks, [len(gaps)]))
    return np.diff(edges).astype(np.int64)


def in_read_mask(read_ids: I64, lengths: list[int]) -> NDArray[np.bool_]:
    """Per interval (within each segment of ``lengths`` events): True when both events came in one read."""
    out: list[NDArray[np.bool_]] = []
    pos = 0
    for m in lengths:
        r = read_ids[pos : pos + m]
        if m > 1:
            out.append(r[1:] == r[:-1])
        pos += m
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def _read_structure(
    gaps: I64, same_read: NDArray[np.bool_], mean: float
) -> tuple[float, bool, dict[str, Any]]:
    """Intervals inside one transport read: the host timed a read's frames once, so their intervals are 0
    (one stamp per read) or a fabricated spacing (the daemon's wire-time correction): values piled on one
    timestamp value, which a continuous interval density never does.

    Test: the in-read intervals in the most common :data:`ATOM_BIN_NS` bin (``in_read_at_mode``) against
    the count an exponential with the stream's mean puts in that bin among all n intervals
    (``in_read_expected``: it holds none of the excess tested); one-sided binomial p, Bonferroni over the
    bins the in-read intervals occupy. Gate: >= :data:`READ_MIN_COUNT` and >= :data:`BATCH_MIN_RATIO` x
    the expectation."""
    n = len(gaps)
    inr = gaps[same_read]
    c_in = len(inr)
    ev: dict[str, Any] = {"intervals_in_read": c_in, "share_in_read": round(c_in / n, 5) if n else 0.0}
    # reads come every mean interval + mean latency (after a read the next event is Exp(mean) away)
    reads = n - c_in
    latency = max(0.0, float(np.sum(gaps)) / reads - mean) if reads > 0 else 0.0
    ev["read_latency_s"] = round(latency / 1e9, 9)
    # a read of m events waited ~(m - 1) mean intervals and delayed its events uniformly over that wait:
    # the mean squared delay sum m ((m - 1) mean)^2 / 3 / n sees rare long stalls a mean latency hides
    m = np.diff(np.concatenate(([-1], np.flatnonzero(~same_read), [len(same_read)]))).astype(np.float64)
    stall = float(np.sqrt(np.sum(m * (m - 1) ** 2) / (3.0 * np.sum(m)))) * mean
    ev["read_stall_rms_s"] = round(stall / 1e9, 9)
    if c_in == 0 or mean <= 0:
        return 1.0, False, ev
    bins = (inr + ATOM_BIN_NS // 2) // ATOM_BIN_NS
    vals, counts = np.unique(bins, return_counts=True)
    mode = int(vals[np.argmax(counts)])
    c_mode = int(np.max(counts))
    lo = max(0.0, mode * ATOM_BIN_NS - ATOM_BIN_NS / 2)
    hi = mode * ATOM_BIN_NS + ATOM_BIN_NS / 2
    p_bin = float(np.exp(-lo / mean) - np.exp(-hi / mean))
    expected = n * p_bin
    p = min(1.0, float(sps.binom.sf(c_mode - 1, n, p_bin)) * len(vals))
    ev.update(
        in_read_mode_ns=mode * ATOM_BIN_NS,
        in_read_at_mode=c_mode,
        in_read_expected=round(expected, 3),
        in_read_resolution_ns=int(np.quantile(inr, 0.95)),
    )
    return p, c_mode >= READ_MIN_COUNT and c_mode >= BATCH_MIN_RATIO * expected, ev


def batch_delivery(
    gaps: I64, read_ids: I64 | None = None, same_read: NDArray[np.bool_] | None = None
) -> Detection:
    """Polling / batch delivery, from the timestamps and, when given, from the read structure.

    Timestamps: the count c0 of intervals < eps vs c1 in [eps, 3 eps); any smooth interval density gives
    c0 / (c0 + c1) ~ p0 = (1 - e^{-r eps}) / (1 - e^{-3 r eps}) (one-sided binomial p), and c0's
    expectation is taken from c1 alone, c1 p0 / (1 - p0), so that it holds none of the excess tested (the
    ratio is unbounded). Read structure (``same_read``: per interval, both events in one read, from the
    ``read_id`` column): see :func:`_read_structure`. The detection's p is the Bonferroni minimum over the
    two sub-tests; it is gated when the smaller-p sub-test's gate passes. ``read_ids`` add the read-batch
    histogram to the evidence.
    """
    n = len(gaps)
    if n < 2:
        return Detection("polling", 1.0, False, {})
    mean = float(np.mean(gaps))
    eps = int(max(1, min(NEAR_ZERO_NS, NEAR_ZERO_REL * mean)))
    c0 = int(np.count_nonzero(gaps < eps))
    c1 = int(np.count_nonzero((gaps >= eps) & (gaps < 3 * eps)))
    lam = 1.0 / mean
    p0 = float(-np.expm1(-lam * eps) / -np.expm1(-3 * lam * eps))
    tot = c0 + c1
    p_ts = float(sps.binom.sf(c0 - 1, tot, p0)) if tot > 0 else 1.0
    expected = c1 * p0 / (1.0 - p0)
    gated_ts = c0 >= 5 and c0 >= BATCH_MIN_RATIO * expected
    sizes = batches(gaps, eps)
    deliveries_gap = gaps[gaps >= eps]
    mean_batch = float(np.mean(sizes))
    median_delivery = float(np.median(deliveries_gap)) if len(deliveries_gap) else None
    ev: dict[str, Any] = {
        "near_zero_ns": eps,
        "near_zero_gaps": c0,
        "near_zero_expected": round(expected, 2),
        "near_zero_ratio": round(c0 / expected, 3) if expected > 0 else None,
        "zero_gap_fraction": round(float(np.mean(gaps == 0)), 5),
        "mean_batch_size": round(mean_batch, 3),
        "max_batch_size": int(np.max(sizes)),
        "fraction_events_batched": round(float(np.sum(sizes[sizes > 1])) / float(np.sum(sizes)), 4),
        "median_delivery_interval_s": round(median_delivery / 1e9, 6) if median_delivery else None,
    }
    subs = [(p_ts, gated_ts)]
    if same_read is not None and len(same_read) == n:
        p_rd, gated_rd, ev_rd = _read_structure(gaps, same_read, mean)
        ev.update(ev_rd, read_structure_gated=gated_rd)
        subs.append((p_rd, gated_rd))
    if read_ids is not None and len(read_ids):
        _, counts = np.unique(read_ids, return_counts=True)
        hist = np.bincount(counts)
        ev["read_batch_histogram"] = {str(k): int(v) for k, v in enumerate(hist) if k > 0 and v > 0}
        ev["mean_events_per_read"] = round(float(np.mean(counts)), 3)
    p_min, gated = min(subs, key=lambda s: s[0])
    # spread of the delays the delivery added (ns): from the reads' mean latency when read_ids are known
    # (an exponential latency's sd is its mean), else from the deliveries (runs of near-zero intervals:
    # one every mean interval + mean delay) and, for real polling, the poll period's uniform spread
    if "read_latency_s" in ev:
        sd = max(ev["read_latency_s"], ev["read_stall_rms_s"]) * 1e9
    else:
        sd = max(0.0, float(np.sum(gaps)) / len(sizes) - mean)
        if mean_batch >= POLLING_MIN_BATCH and median_delivery:
            sd = max(sd, median_delivery / np.sqrt(12.0))
    ev["delay_sd_s"] = round(max(sd, float(eps)) / 1e9, 9)
    return Detection("polling", min(1.0, p_min * len(subs)), gated, ev)


def dead_time(gaps: I64) -> Detection:
    """Dead time: a hole at small intervals. Test on the k-th smallest interval d_k: under exponential
    intervals #(g < d_k) ~ Binomial(n, 1 - e^{-d_k/mean}), p = P(Bin <= k - 1). Evidence says whether
    the intervals pile up just above the hole (events delayed by the host: ``delivery``), the hole equals a
    reply's wire time (the UART serialises replies: ``link``), or neither (``source``)."""
    n = len(gaps)
    if n < 2:
        return Detection("dead-time", 1.0, False, {})
    mean = float(np.mean(gaps))
    k = 1 + n // DEADTIME_K_DIV
    dk = int(np.partition(gaps, k - 1)[k - 1])
    pk = float(-np.expm1(-dk / mean))
    p = float(sps.binom.cdf(k - 1, n, pk))
    width = max(1.0, min(PILEUP_REL * dk, 0.05 * mean))
    above = gaps[gaps >= dk]
    lam_above = 1.0 / max(float(np.mean(above - dk)), 1e-12) if len(above) else 0.0
    c_pile = int(np.count_nonzero(gaps < dk + width)) - (k - 1)
    exp_pile = len(above) * float(-np.expm1(-lam_above * width))
    pile_ratio = c_pile / max(exp_pile, 1e-12)
    link = wire_match(dk / 1e9)
    if link is not None:
        mechanism = "link"
    elif pile_ratio >= PILEUP_MIN_RATIO and c_pile >= 10:
        mechanism = "delivery"
    else:
        mechanism = "source"
    ev: dict[str, Any] = {
        "dead_time_s": dk / 1e9,
        "order_statistic_k": k,
        "expected_below": round(n * pk, 2),
        "pileup_ratio": round(pile_ratio, 3),
        "mechanism": mechanism,
        "link": link,
    }
    # gate: the hole must be wide enough to matter (>= 1 % of intervals would fall in it)
    return Detection("dead-time", p, pk >= 0.01, ev)
