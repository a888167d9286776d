"""Structure beyond a host artefact: the stream tested at the resolution the artefact leaves intact.

A host artefact (batch delivery, a timestamp quantum, a link or delivery dead time) shifts events by amounts
of spread ``R`` and rewrites the intervals shorter than that, so the interval tests (CV, KS, AD, Ljung-Box,
the dead-time hole) no longer speak for the source. Counts in windows much longer than ``R`` barely move: a
shift changes a window count only when an event crosses the window's edge. The stream is therefore re-tested
on window counts only, in windows long enough that the edges' shifts cannot bias the Fano factor
(:func:`min_window_s`):

- ``beyond-fano``: the index-of-dispersion test at windows of 1, 3, 10, ... x the shortest usable one that
  fit at least 20 times (Bonferroni over windows);
- ``beyond-ljung-box``: Ljung-Box over lags :data:`LB_FIRST_LAG`..:data:`LB_LAST_LAG` of the counts in the
  shortest such window (lag 1 is left out: an event that a delivery moves across a window edge makes
  neighbouring counts anti-correlated, and short-range interval correlation reaches the next window only).

Kinds (docs/analyze.md): Fano below 1 -> ``regular/dead-time`` (only a regular source thins the counts'
variance); counts correlated over several windows -> a rate change (``modulation`` when periodic, else
``rate-drift``); Fano above 1 without
long-range correlation of the counts -> ``serial-correlation`` (intervals that remember their neighbours
raise the Fano factor to a plateau); with too few windows for the count Ljung-Box, a Fano excess is read as
a rate change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from reservoir.timing import core
from reservoir.timing.artifacts import Detection

I64 = NDArray[np.int64]

#: Windows at least this many times the artefact's time scale ...
RESOLUTION_MULTIPLE = 20.0
#: ... and at least this many mean intervals (a dead time or a modulation shows in the Fano factor there).
MIN_WINDOW_MULTIPLE = 10.0
#: The Fano bias the shifts may cause is kept below 1/this of the Fano factor's null spread.
BIAS_FRACTION = 4.0
#: Ljung-Box lags on the counts of the shortest coarse window.
LB_FIRST_LAG = 2
LB_LAST_LAG = 10
#: Fewest windows for the count Ljung-Box (chi-square validity at 9 lags).
LB_MIN_WINDOWS = 50
#: Structure beyond an artefact is claimed at this fraction of alpha: an artefact shows the host touched the
#: stream, so a claim on the source needs stronger evidence (and artefact streams keep a low false rate).
ALPHA_FRACTION = 0.2

TESTS = ("beyond-fano", "beyond-ljung-box")


@dataclass
class Beyond:
    """Count statistics at the artefact's resolution (``resolution_s``: the spread of its shifts, s); p-values
    under the Poisson null (nan: not defined, e.g. no window both long enough and 20 times in the stream)."""

    resolution_s: float
    min_window_s: float
    fano: dict[float, float] = field(default_factory=dict)
    fano_p: dict[float, float] = field(default_factory=dict)
    count_acf: list[float] = field(default_factory=list)
    pvalues: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """JSON-able: resolution, windows, Fano per window (s -> value), count autocorrelation, p-values."""
        return {
            "resolution_s": self.resolution_s,
            "min_window_s": self.min_window_s,
            "fano": {f"{w:.6g}": v for w, v in self.fano.items()},
            "fano_p": {f"{w:.6g}": v for w, v in self.fano_p.items()},
            "count_acf": self.count_acf,
            "pvalues": self.pvalues,
        }


def resolution_s(d: Detection) -> float:
    """Spread (s, a standard deviation) of the shifts a detected artefact gave the timestamps: q / sqrt(12)
    for a quantum q, the delivery's delay spread for batch delivery, at most the hole for a dead time."""
    ev = d.evidence
    if d.name == "timestamp-quantum":
        return float(ev.get("quantum_s", 0.0)) / float(np.sqrt(12.0))
    if d.name == "polling":
        return float(ev.get("delay_sd_s", 0.0))
    if d.name == "dead-time":
        return float(ev.get("dead_time_s", 0.0))
    return 0.0


def min_window_s(mean_interval_s: float, duration_s: float, sd_s: float) -> float:
    """Shortest window (s) whose counts the artefact leaves usable.

    A window's two edges, mapped back to the source's time, move by the delivery's shifts: the count's
    variance grows by rate x 2 sd^2, the Fano factor by ~ 2 rate sd^2 / W. That bias must stay below
    1 / :data:`BIAS_FRACTION` of the Fano factor's null spread sqrt(2 W / T) over the duration T, i.e.
    W^{3/2} >= BIAS_FRACTION x 2 rate sd^2 sqrt(T / 2); and W >= :data:`RESOLUTION_MULTIPLE` sd and
    :data:`MIN_WINDOW_MULTIPLE` mean intervals.
    """
    rate = 1.0 / mean_interval_s if mean_interval_s > 0 else 0.0
    w_bias = (BIAS_FRACTION * 2.0 * rate * sd_s**2 * np.sqrt(duration_s / 2.0)) ** (2.0 / 3.0)
    return float(max(MIN_WINDOW_MULTIPLE * mean_interval_s, RESOLUTION_MULTIPLE * sd_s, w_bias))


def coarse(segments: Sequence[I64], mean_interval_s: float, res_s: float) -> Beyond:
    """Window-count tests of a stream whose timestamps were shifted with spread ``res_s`` (s); see the
    module docstring and :func:`min_window_s`."""
    dur = core.duration_s(segments)
    w_min = min_window_s(mean_interval_s, dur, res_s)
    out = Beyond(resolution_s=res_s, min_window_s=w_min)
    longest = max((int(s[-1]) - int(s[0])) / core.NS for s in segments if len(s) > 1)
    # the shortest usable window, then the Fano ladder's steps (1, 3, 10, ... x) above it
    windows = [w_min * m for m in core.FANO_MULTIPLES if w_min * m * core.FANO_MIN_WINDOWS <= longest]
    nan = float("nan")
    first: I64 | None = None
    for w in windows:
        c = core.window_counts(segments, w)
        if len(c) >= core.FANO_MIN_WINDOWS and c.mean() > 0:
            out.fano[w] = core.fano(c)
            out.fano_p[w] = core.fano_pvalue(out.fano[w], len(c))
            if first is None:
                first = c
    p_fano = min(1.0, min(out.fano_p.values()) * len(out.fano_p)) if out.fano_p else nan
    p_lb = nan
    if first is not None and len(first) >= LB_MIN_WINDOWS:
        x = first.astype(np.float64)
        r = core.autocorr(x, LB_LAST_LAG)
        out.count_acf = [float(v) for v in r]
        n = len(x)
        k = np.arange(LB_FIRST_LAG, LB_LAST_LAG + 1)
        q = float(n * (n + 2) * np.sum(r[LB_FIRST_LAG - 1 :] ** 2 / (n - k)))
        p_lb = float(sps.chi2.sf(q, len(k)))
    out.pvalues = {"beyond-fano": p_fano, "beyond-ljung-box": p_lb}
    return out


def kind(b: Beyond, rejected: set[str], alpha: float, rate_change: str = "rate-drift") -> str:
    """Kind of the structure left beyond the artefact, from the rejected ``beyond-*`` tests; a rate change is
    named ``rate_change`` (``rate-drift`` or ``modulation``, from :mod:`reservoir.timing.periodic`)."""
    level = alpha * ALPHA_FRACTION
    sig = [w for w, p in b.fano_p.items() if p * len(b.fano_p) < level]
    if "beyond-fano" in rejected and any(b.fano[w] < 1 for w in sig):
        return "regular/dead-time"
    if "beyond-ljung-box" in rejected or np.isnan(b.pvalues.get("beyond-ljung-box", float("nan"))):
        # long-range count correlation; without enough windows to tell, a Fano excess over >= 10 mean
        # intervals is read as a rate change, as the interval-level order does
        return rate_change
    return "serial-correlation"
