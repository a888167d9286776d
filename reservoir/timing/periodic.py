"""Is a rate change periodic? Tells a ``modulation`` from a ``rate-drift`` (docs/analyze.md, "Kinds").

Both raise the Fano factor of long windows; only a modulation puts its power into one frequency. The test
reads the periodogram of window counts against a *local* background: each ordinate ``I_k`` divided by the
mean of its ``m`` neighbours (``k +- NEIGHBOURS``, the two adjacent ordinates left out for leakage). Under a
flat spectrum the ordinates are independent exponentials, so the ratio is F(2, 2m) distributed:
``P(ratio > r) = (1 + r / m) ** -m``; a red spectrum (a drift's random walk) is convex, so the neighbours'
mean lies above the centre and the test stays conservative. A sinusoid gives one ordinate far above its
neighbours. The p-value is Bonferroni over the frequencies tested.

A period is only claimed when the record holds at least :data:`MIN_CYCLES` of it: half a cycle of a slow
sinusoid is indistinguishable from a drift and is called one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

#: Neighbours on each side forming an ordinate's background.
NEIGHBOURS = 8
#: Fewest cycles of a period in the record for it to be claimed.
MIN_CYCLES = 3
#: A rate change is called ``modulation`` when the periodicity p-value is below this.
PERIODIC_ALPHA = 1e-3
#: Fewest windows for the test (a spectrum needs ordinates on both sides of a peak).
MIN_WINDOWS = 4 * NEIGHBOURS + 2 * MIN_CYCLES


@dataclass(frozen=True)
class Periodicity:
    """The strongest periodic component: its p-value, period (s) and ratio over the local background."""

    p: float
    period_s: float
    ratio: float

    @property
    def periodic(self) -> bool:
        """True when the rate change is a modulation (p below :data:`PERIODIC_ALPHA`)."""
        return bool(self.p < PERIODIC_ALPHA)


def periodicity(counts: NDArray[np.floating] | NDArray[np.integer], window_s: float) -> Periodicity:
    """Test window ``counts`` (windows of ``window_s`` s) for one periodic component; p = 1 when too short."""
    x = np.asarray(counts, dtype=np.float64)
    n = len(x)
    if n < MIN_WINDOWS or not np.any(x != x[0]):
        return Periodicity(1.0, float("nan"), 0.0)
    spec = np.abs(np.fft.rfft(x - x.mean())) ** 2 / n
    m = len(spec)
    ks = np.arange(MIN_CYCLES, m - 1)  # neither the mean nor Nyquist
    c = np.concatenate(([0.0], np.cumsum(spec)))  # sum of spec[a:b] = c[b] - c[a]
    lo, hi = np.maximum(1, ks - NEIGHBOURS), np.minimum(m - 1, ks + NEIGHBOURS + 1)
    a, b = np.maximum(lo, ks - 1), np.minimum(hi, ks + 2)  # the ordinate and its two leakage neighbours
    sizes = ((hi - lo) - (b - a)).astype(np.float64)
    total = (c[hi] - c[lo]) - (c[b] - c[a])
    mean = np.divide(total, sizes, out=np.zeros(len(ks)), where=sizes > 0)
    ratios = np.divide(spec[ks], mean, out=np.zeros(len(ks)), where=mean > 0)
    sizes = np.maximum(sizes, 1.0)
    pk = (1.0 + ratios / sizes) ** -sizes
    j = int(np.argmin(pk))
    p = float(min(1.0, len(ks) * pk[j]))
    return Periodicity(p, n * window_s / float(ks[j]), float(ratios[j]))
