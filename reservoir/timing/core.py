"""Vectorised statistics of an event stream: rate, CV, Fano curve, exponential fit, serial correlation.

Everything here is closed-form or a single pass over the data (no Monte-Carlo): the p-values that need a null
distribution by simulation live in :mod:`reservoir.timing.nulls`. Times are int64 nanoseconds, intervals
float64 seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

NS = 1_000_000_000  # nanoseconds per second

#: Fano windows as multiples of the mean interval: log-spaced, 1 to 10^4 (docs/methods.md: "across window
#: lengths")
FANO_MULTIPLES: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
#: A window length is used only when the stream holds at least this many whole windows (chi-square validity).
FANO_MIN_WINDOWS = 20
#: Ljung-Box lags on the intervals (1..k).
LJUNG_BOX_LAGS = 10


def as_segments(times_ns: I64 | Sequence[I64]) -> list[I64]:
    """Normalise one sorted time array, or a list of contiguous segments, to a list of int64 arrays."""
    if isinstance(times_ns, np.ndarray):
        return [np.asarray(times_ns, dtype=np.int64)]
    return [np.asarray(s, dtype=np.int64) for s in times_ns if len(s) > 0]


def intervals_ns(segments: Sequence[I64]) -> I64:
    """Inter-event intervals (ns) within each segment; intervals across segment boundaries are dropped."""
    parts = [np.diff(s) for s in segments if len(s) > 1]
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(parts)


def duration_s(segments: Sequence[I64]) -> float:
    """Total observed time (s): the sum over segments of last minus first event."""
    return float(sum(int(s[-1]) - int(s[0]) for s in segments if len(s) > 1)) / NS


def cv(x: F64) -> float:
    """Coefficient of variation std/mean of intervals (ddof=1); 1 for exponential intervals."""
    m = float(np.mean(x))
    return float(np.std(x, ddof=1)) / m if m > 0 else float("nan")


def fano_windows(mean_interval_s: float, longest_s: float) -> list[float]:
    """Window lengths (s) of the Fano curve: :data:`FANO_MULTIPLES` x mean interval, >= 20 windows each."""
    return [
        m * mean_interval_s for m in FANO_MULTIPLES if m * mean_interval_s * FANO_MIN_WINDOWS <= longest_s
    ]


def window_counts(segments: Sequence[I64], window_s: float) -> I64:
    """Counts of events in consecutive whole windows of ``window_s`` s from each segment's first event.

    The event that opens a segment is not counted (it is the conditioning event); partial windows at the end
    of a segment are dropped.
    """
    w = window_s * NS
    out: list[I64] = []
    for s in segments:
        if len(s) < 2:
            continue
        k = int((int(s[-1]) - int(s[0])) // w)
        if k < 1:
            continue
        # float64 holds ns offsets exactly up to ~104 days; multiply-and-truncate beats int64 floor division
        idx = ((s[1:] - s[0]).astype(np.float64) * (1.0 / w)).astype(np.int64)
        out.append(np.bincount(idx, minlength=k + 1)[:k].astype(np.int64))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def fano(counts: I64) -> float:
    """Fano factor Var N / E N of window counts (ddof=1); 1 for a Poisson process at every window length."""
    m = float(np.mean(counts))
    return float(np.var(counts, ddof=1)) / m if m > 0 else float("nan")


def fano_pvalue(f: float, k: int) -> float:
    """Two-sided p of the index-of-dispersion test: (k-1) F ~ chi2(k-1) for k windows of Poisson counts."""
    d = k - 1
    lo = float(sps.chi2.cdf(f * d, d))
    return min(1.0, 2.0 * min(lo, 1.0 - lo))


def fano_null95(k: int) -> tuple[float, float]:
    """Central 95 % interval of the Fano factor of k Poisson windows (chi-square approximation)."""
    d = k - 1
    return float(sps.chi2.ppf(0.025, d)) / d, float(sps.chi2.ppf(0.975, d)) / d


def exp_cdf_sorted(xs: F64) -> F64:
    """Rows of sorted intervals -> exponential CDF values with the scale fitted per row (MLE: the mean)."""
    scale = xs.mean(axis=-1, keepdims=True)
    out: F64 = -np.expm1(-xs / scale)
    return out


def ks_exp(xs_sorted: F64) -> F64:
    """KS distance to an exponential with fitted scale, per row of sorted intervals (Lilliefors statistic)."""
    n = xs_sorted.shape[-1]
    f = exp_cdf_sorted(xs_sorted)
    i = np.arange(1, n + 1, dtype=np.float64)
    d_plus = np.max(i / n - f, axis=-1)
    d_minus = np.max(f - (i - 1) / n, axis=-1)
    return np.asarray(np.maximum(d_plus, d_minus), dtype=np.float64)


def ad_exp(xs_sorted: F64) -> F64:
    """Anderson-Darling A^2 against an exponential with fitted scale, per row of sorted intervals."""
    n = xs_sorted.shape[-1]
    z = xs_sorted / xs_sorted.mean(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_f = np.log(-np.expm1(-z))  # log F(x_i); -inf for a zero interval
    log_sf_rev = -z[..., ::-1]  # log(1 - F(x_{n+1-i}))
    w = 2.0 * np.arange(1, n + 1, dtype=np.float64) - 1.0
    s = np.sum(w * (log_f + log_sf_rev), axis=-1)
    out: F64 = np.asarray(-n - s / n, dtype=np.float64)
    return out


def autocorr(x: F64, lags: int) -> F64:
    """Sample autocorrelation of x at lags 1..lags (biased estimator, as Ljung-Box uses)."""
    d = x - x.mean()
    den = float(np.dot(d, d))
    if den <= 0:
        return np.zeros(lags)
    return np.array([float(np.dot(d[:-k], d[k:])) / den for k in range(1, lags + 1)], dtype=np.float64)


def ljung_box(x: F64, lags: int = LJUNG_BOX_LAGS) -> tuple[float, float, F64]:
    """Ljung-Box Q over lags 1..lags of the intervals, its chi2(lags) p-value, and the autocorrelations."""
    n = len(x)
    lags = max(1, min(lags, n // 5))
    r = autocorr(x, lags)
    k = np.arange(1, lags + 1)
    q = float(n * (n + 2) * np.sum(r**2 / (n - k)))
    return q, float(sps.chi2.sf(q, lags)), r


def holm(pvals: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error control), in input order."""
    p = np.asarray(pvals, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [float(v) for v in out]


def benjamini_hochberg(pvals: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false-discovery-rate control), in input order."""
    p = np.asarray(pvals, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [float(v) for v in out]


#: Time rescaling: the rate is fitted piecewise-constant over bins of this many mean intervals (smaller bins
#: overfit: at 50 the rescaled intervals of a true Poisson train fail the KS test too often).
RESCALE_BIN_MULTIPLE = 200.0


def time_rescaled(segments: Sequence[I64], bin_s: float) -> F64:
    """Intervals after time rescaling with a piecewise-constant rate fitted per ``bin_s`` bin (Brown et al.
    2002): tau_i = Lambda(t_i) - Lambda(t_{i-1}); Exp(1) if the train is Poisson with that varying rate."""
    w = bin_s * NS
    out: list[F64] = []
    for s in segments:
        if len(s) < 3:
            continue
        off = (s - s[0]).astype(np.float64)
        span = float(off[-1])
        nb = max(1, int(np.ceil(span / w)))
        idx = np.minimum((off[1:] / w).astype(np.int64), nb - 1)
        counts = np.bincount(idx, minlength=nb).astype(np.float64)
        widths = np.full(nb, w)
        widths[-1] = span - (nb - 1) * w
        widths[widths <= 0] = w
        cum = np.concatenate(([0.0], np.cumsum(counts)))
        lam = cum[idx] + counts[idx] * (off[1:] - idx * w) / widths[idx]
        out.append(np.diff(np.concatenate(([0.0], lam))))
    return np.concatenate(out) if out else np.zeros(0)
