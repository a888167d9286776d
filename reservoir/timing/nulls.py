"""Monte-Carlo null distributions for a homogeneous Poisson process, seeded and cached per interval count.

The three statistics simulated here are pivotal under the null (they do not depend on the rate), so one null
per interval count ``n`` serves every stream: sqrt(n) (CV - 1), sqrt(n) D (KS with the scale fitted:
Lilliefors), and A^2 (Anderson-Darling with the scale fitted). Above :data:`MC_MAX_N` intervals the null is
simulated at ``MC_MAX_N`` and used through these scalings (their limiting laws are reached well before).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

from reservoir.timing.core import ad_exp, ks_exp

F64 = NDArray[np.float64]

#: Monte-Carlo replicates per null: at least this many (p-value resolution 1/(B+1) = 0.001) ...
MC_REPLICATES = 999
#: ... and more for short streams, up to MC_MAX_REPLICATES, while B x n stays within MC_BUDGET samples.
MC_MAX_REPLICATES = 19_999
MC_BUDGET = 4_000_000
#: Largest interval count simulated exactly; larger counts reuse it through the sqrt(n) scaling.
MC_MAX_N = 5000
#: Seed of every null (results are reproducible run to run).
NULL_SEED = 20261127
#: Rows simulated per chunk (bounds memory to ~chunk x n doubles).
_CHUNK_ELEMS = 4_000_000


@functools.lru_cache(maxsize=64)
def _null_tables(n: int, reps: int) -> tuple[F64, F64, F64]:
    """Sorted null samples of (sqrt(n)(CV-1), sqrt(n) D, A^2) for n exponential intervals."""
    rng = np.random.default_rng([NULL_SEED, n, reps])
    rows = max(1, _CHUNK_ELEMS // n)
    cvs: list[F64] = []
    kss: list[F64] = []
    ads: list[F64] = []
    done = 0
    while done < reps:
        r = min(rows, reps - done)
        x = np.sort(rng.standard_exponential((r, n)), axis=1)
        m = x.mean(axis=1)
        cvs.append(np.sqrt(n) * (x.std(axis=1, ddof=1) / m - 1.0))
        kss.append(np.sqrt(n) * ks_exp(x))
        ads.append(ad_exp(x))
        done += r
    return np.sort(np.concatenate(cvs)), np.sort(np.concatenate(kss)), np.sort(np.concatenate(ads))


def null_tables(n: int, reps: int | None = None) -> tuple[F64, F64, F64]:
    """Cached null samples (sorted) of sqrt(n)(CV-1), sqrt(n) D and A^2 for ``n`` intervals."""
    n = min(int(n), MC_MAX_N)
    if reps is None:
        reps = max(MC_REPLICATES, min(MC_MAX_REPLICATES, MC_BUDGET // n))
    return _null_tables(n, int(reps))


def _upper_p(null_sorted: F64, value: float) -> float:
    """Monte-Carlo upper-tail p-value (1 + #null >= value) / (B + 1)."""
    b = len(null_sorted)
    ge = b - int(np.searchsorted(null_sorted, value, side="left"))
    return (1 + ge) / (b + 1)


def _lower_p(null_sorted: F64, value: float) -> float:
    """Monte-Carlo lower-tail p-value (1 + #null <= value) / (B + 1)."""
    le = int(np.searchsorted(null_sorted, value, side="right"))
    return (1 + le) / (len(null_sorted) + 1)


def cv_pvalue(cv: float, n: int, reps: int | None = None) -> float:
    """Two-sided Monte-Carlo p of the CV of ``n`` intervals under the exponential null."""
    z = np.sqrt(n) * (cv - 1.0)
    table = null_tables(n, reps)[0]
    return min(1.0, 2.0 * min(_upper_p(table, z), _lower_p(table, z)))


def cv_null95(n: int, reps: int | None = None) -> tuple[float, float]:
    """Central 95 % interval of the CV of ``n`` exponential intervals (docs/methods.md: 0.54-1.48 at n =
    10)."""
    table = null_tables(n, reps)[0]
    lo, hi = np.quantile(table, [0.025, 0.975])
    return 1.0 + float(lo) / np.sqrt(n), 1.0 + float(hi) / np.sqrt(n)


def ks_pvalue(d: float, n: int, reps: int | None = None) -> float:
    """Lilliefors (scale-fitted) KS p-value by Monte-Carlo for distance ``d`` on ``n`` intervals."""
    return _upper_p(null_tables(n, reps)[1], float(np.sqrt(n) * d))


def ad_pvalue(a2: float, n: int, reps: int | None = None) -> float:
    """Anderson-Darling (scale-fitted exponential) p-value by Monte-Carlo."""
    return _upper_p(null_tables(n, reps)[2], a2)
