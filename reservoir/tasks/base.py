"""Task containers, fixed splits, input scaling and metrics shared by every benchmark task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


class TaskDataError(ValueError):
    """A user-supplied data file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class SeriesTask:
    """A driven time series: the reservoir sees ``u`` step by step, the readout predicts ``y``.

    Rows ``[0, washout)`` only warm the reservoir up; ``[washout, washout + n_train)`` train the readout;
    the next ``n_test`` rows test it. ``u`` (T, d_in) and ``y`` (T, k) are aligned: ``y[t]`` is predicted
    from the state after ``u[t]``. ``metric`` is "nmse" (regression/forecast) or "mc" (memory capacity).
    ``free_run`` > 0 asks the runner for a closed-loop free-run score after that many steps (the input of
    step t+1 is the prediction of step t; only for one-input one-output autonomous series).
    """

    name: str
    u: F64
    y: F64
    washout: int
    n_train: int
    n_test: int
    metric: Literal["nmse", "mc"]
    free_run: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def train(self) -> slice:
        """Rows of the training split."""
        return slice(self.washout, self.washout + self.n_train)

    @property
    def test(self) -> slice:
        """Rows of the test split."""
        start = self.washout + self.n_train
        return slice(start, start + self.n_test)


@dataclass(frozen=True)
class ClassificationTask:
    """Static samples: features X (n, d), integer labels y (n,), fixed train/test split."""

    name: str
    X_train: F64
    y_train: NDArray[np.int64]
    X_test: F64
    y_test: NDArray[np.int64]
    metric: Literal["accuracy"] = "accuracy"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        """Number of distinct labels in the whole set."""
        return int(np.unique(np.concatenate([self.y_train, self.y_test])).size)


Task = SeriesTask | ClassificationTask


@dataclass(frozen=True)
class MinMaxScaler:
    """Affine map fitted on the training split only: training min -> lo, training max -> hi (per column)."""

    lo_in: F64
    hi_in: F64
    lo: float = -1.0
    hi: float = 1.0

    @classmethod
    def fit(cls, train: F64, lo: float = -1.0, hi: float = 1.0) -> MinMaxScaler:
        """Fit on rows of the training split (n, d)."""
        a = np.asarray(train, dtype=np.float64)
        return cls(a.min(axis=0), a.max(axis=0), lo, hi)

    def transform(self, x: F64) -> F64:
        """Scale x (n, d); constant columns map to the middle of [lo, hi]."""
        span = self.hi_in - self.lo_in
        safe = np.where(span > 0, span, 1.0)
        z = (np.asarray(x, dtype=np.float64) - self.lo_in) / safe
        z = np.where(span > 0, z, 0.5)
        return np.asarray(self.lo + (self.hi - self.lo) * z, dtype=np.float64)


def nmse(y_hat: F64, y: F64) -> float:
    """Normalised mean squared error mean((yhat - y)^2) / var(y), pooled over output columns."""
    yh = np.asarray(y_hat, dtype=np.float64).reshape(len(y_hat), -1)
    yt = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    var = float(np.mean(np.var(yt, axis=0)))
    return float(np.mean((yh - yt) ** 2)) / var if var > 0 else float("nan")


def nrmse(y_hat: F64, y: F64) -> float:
    """sqrt(NMSE)."""
    return float(np.sqrt(nmse(y_hat, y)))


def memory_capacity(y_hat: F64, y: F64) -> tuple[float, F64]:
    """MC = sum over delays k of the squared correlation r^2(y_k, yhat_k); returns (MC, per-delay r^2)."""
    yh = np.asarray(y_hat, dtype=np.float64)
    yt = np.asarray(y, dtype=np.float64)
    r2 = np.empty(yt.shape[1])
    for k in range(yt.shape[1]):
        a, b = yh[:, k], yt[:, k]
        if np.std(a) == 0 or np.std(b) == 0:
            r2[k] = 0.0
        else:
            r2[k] = float(np.corrcoef(a, b)[0, 1] ** 2)
    return float(r2.sum()), r2


def accuracy(y_hat: NDArray[Any], y: NDArray[Any]) -> float:
    """Fraction of correct labels."""
    return float(np.mean(np.asarray(y_hat) == np.asarray(y)))


def check_finite(name: str, a: F64) -> None:
    """Raise TaskDataError naming the array when it holds NaN or inf."""
    bad = ~np.isfinite(a)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        raise TaskDataError(
            f"{name}: {int(bad.sum())} non-finite value(s) (NaN/inf), first at flat index {first}"
        )
