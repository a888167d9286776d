"""The one ridge readout every reservoir shares: a scikit-learn estimator fitted from sufficient statistics.

The statistics are :class:`~reservoir.ridge_stats.RidgeStats` (mergeable blocks of rows, so
:meth:`RidgeReadout.partial_fit` streams without holding the data and several hosts sum into one fit); the
alpha is chosen by :mod:`reservoir.ridge_cv`:

* ``alpha="gcv"``: generalised cross-validation from the pooled statistics (:func:`gcv_errors`);
* ``alpha="cv"``: exact k-fold CV over ``n_folds`` contiguous folds kept as per-fold statistics
  (:func:`kfold_errors`).

The intercept is never penalised (the fit is on centred statistics), so for a fixed alpha the predictions
equal :class:`sklearn.linear_model.Ridge` (``solver="cholesky"``) to rounding. ``RidgeStats``,
``gcv_errors`` and ``kfold_errors`` are importable from here as well.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from reservoir.ridge_cv import gcv_errors, kfold_errors, solve
from reservoir.ridge_stats import CHUNK_ROWS, RidgeStats

__all__ = [
    "CHUNK_ROWS",
    "DEFAULT_ALPHAS",
    "RidgeClassifierReadout",
    "RidgeReadout",
    "RidgeStats",
    "gcv_errors",
    "kfold_errors",
]

F64 = NDArray[np.float64]

#: Default alpha grid for "cv"/"gcv" (reservoir states are O(1); the anchors need ~1e-8..1e-4).
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-10, 3, 27))


class RidgeReadout(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Ridge regression with an unpenalised intercept, fitted from :class:`RidgeStats`.

    Parameters: ``alpha`` a float >= 0, or ``"cv"`` (k-fold over ``n_folds`` contiguous folds) or ``"gcv"``;
    ``alphas`` the grid searched; ``n_folds`` the number of folds; ``fit_intercept``.
    Learned: ``coef_`` (d,) or (k, d), ``intercept_``, ``alpha_``, ``stats_``, ``fold_stats_`` (cv only),
    ``cv_errors_`` (per alpha, when searched), ``n_features_in_``.
    """

    def __init__(
        self,
        alpha: float | str = 1.0,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        n_folds: int = 5,
        fit_intercept: bool = True,
    ) -> None:
        self.alpha = alpha
        self.alphas = alphas
        self.n_folds = n_folds
        self.fit_intercept = fit_intercept

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _check_params(self) -> None:
        if isinstance(self.alpha, str):
            if self.alpha not in ("cv", "gcv"):
                raise ValueError(f"alpha must be a float >= 0, 'cv' or 'gcv'; got {self.alpha!r}")
            if len(self.alphas) == 0:
                raise ValueError("alphas grid is empty")
        elif not float(self.alpha) >= 0.0:
            raise ValueError(f"alpha must be >= 0; got {self.alpha!r}")
        if self.alpha == "cv" and int(self.n_folds) < 2:
            raise ValueError(f"n_folds must be >= 2 folds; got {self.n_folds!r}")

    def _block_stats(self, X: F64, y: F64, w: F64 | None) -> list[RidgeStats]:
        """Stats of a chunk, split into ``cv`` contiguous folds when alpha == 'cv' (else one element)."""
        k = int(self.n_folds) if self.alpha == "cv" else 1
        bounds = np.linspace(0, X.shape[0], k + 1).astype(int)
        return [
            RidgeStats.from_arrays(X[a:b], y[a:b], None if w is None else w[a:b])
            for a, b in itertools.pairwise(bounds)
        ]

    def _validate(self, X: ArrayLike, y: ArrayLike, reset: bool, sample_weight: ArrayLike | None) -> Any:
        Xv, yv = validate_data(self, X, y, reset=reset, multi_output=True, y_numeric=True, dtype=np.float64)
        w = None if sample_weight is None else _check_sample_weight(sample_weight, Xv, dtype=np.float64)
        return Xv, np.asarray(yv, dtype=np.float64), w

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> RidgeReadout:
        """Fit on X (n, d) and y (n,) or (n, k); returns self."""
        self._check_params()
        Xv, yv, w = self._validate(X, y, True, sample_weight)
        self._y_1d = yv.ndim == 1
        return self._fit_folds(self._block_stats(Xv, yv, w))

    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> RidgeReadout:
        """Add a chunk of rows to the statistics and refit (cheap: O(d^3) per call)."""
        self._check_params()
        first = not hasattr(self, "stats_")
        Xv, yv, w = self._validate(X, y, first, sample_weight)
        blocks = self._block_stats(Xv, yv, w)
        if not first:
            old = getattr(self, "fold_stats_", None) or [self.stats_]
            if len(old) != len(blocks) or old[0].y_mean.size != blocks[0].y_mean.size:
                raise ValueError("partial_fit: target shape or alpha mode changed between calls")
            blocks = [a + b for a, b in zip(old, blocks)]
        else:
            self._y_1d = yv.ndim == 1
        return self._fit_folds(blocks)

    def fit_stats(self, stats: RidgeStats | Sequence[RidgeStats], y_1d: bool | None = None) -> RidgeReadout:
        """Fit from precomputed statistics (e.g. summed across hosts); a sequence is used as CV folds."""
        self._check_params()
        folds = [stats] if isinstance(stats, RidgeStats) else list(stats)
        if self.alpha == "cv" and len(folds) < 2:
            raise ValueError("alpha='cv' needs a sequence of at least 2 fold statistics")
        self.n_features_in_ = int(folds[0].x_mean.size)
        self._y_1d = folds[0].y_mean.size == 1 if y_1d is None else y_1d
        return self._fit_folds(folds)

    def _fit_folds(self, folds: list[RidgeStats]) -> RidgeReadout:
        total = folds[0]
        for f in folds[1:]:
            total = total + f
        self.stats_ = total
        self.fold_stats_ = folds if self.alpha == "cv" else None
        alphas = [float(a) for a in self.alphas]
        if self.alpha == "cv":
            self.cv_errors_ = kfold_errors(folds, alphas, total=total)
            self.alpha_ = alphas[int(np.argmin(self.cv_errors_))]
        elif self.alpha == "gcv":
            self.cv_errors_ = gcv_errors(total, alphas)
            self.alpha_ = alphas[int(np.argmin(self.cv_errors_))]
        else:
            self.alpha_ = float(self.alpha)
        if self.fit_intercept:
            W = solve(total, self.alpha_)
            b = total.y_mean - total.x_mean @ W
        else:
            raw = RidgeStats(
                total.n,
                total.rows,
                0 * total.x_mean,
                0 * total.y_mean,
                total.xtx(),
                total.xty(),
                0 * total.cyy,
            )
            W = solve(raw, self.alpha_)
            b = np.zeros(W.shape[1])
        if self._y_1d:
            self.coef_ = W[:, 0].copy()
            self.intercept_: float | F64 = float(b[0])
        else:
            self.coef_ = W.T.copy()
            self.intercept_ = b
        return self

    def predict(self, X: ArrayLike) -> F64:
        """Predictions (n,) or (n, k)."""
        check_is_fitted(self, "coef_")
        Xv = validate_data(self, X, reset=False, dtype=np.float64)
        return np.asarray(Xv @ self.coef_.T + self.intercept_, dtype=np.float64)


class RidgeClassifierReadout(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """One-vs-rest ridge on one-hot (+1/-1) targets; predicts the argmax. Same parameters as RidgeReadout."""

    def __init__(
        self,
        alpha: float | str = 1.0,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        n_folds: int = 5,
        fit_intercept: bool = True,
    ) -> None:
        self.alpha = alpha
        self.alphas = alphas
        self.n_folds = n_folds
        self.fit_intercept = fit_intercept

    def fit(self, X: ArrayLike, y: ArrayLike) -> RidgeClassifierReadout:
        """Fit on features X (n, d) and labels y (n,); returns self."""
        Xv, yv = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(yv)
        self._binarizer = LabelBinarizer(pos_label=1, neg_label=-1)
        Y = self._binarizer.fit_transform(yv).astype(np.float64)
        self.classes_ = self._binarizer.classes_
        if Y.shape[1] == 1:  # binary: one +-1 column, positive score means classes_[1]
            Y = Y[:, 0]
        self.readout_ = RidgeReadout(self.alpha, self.alphas, self.n_folds, self.fit_intercept).fit(Xv, Y)
        self.alpha_ = self.readout_.alpha_
        return self

    def decision_function(self, X: ArrayLike) -> F64:
        """Scores (n, n_classes), or (n,) for two classes (positive means ``classes_[1]``)."""
        check_is_fitted(self, "readout_")
        Xv = validate_data(self, X, reset=False, dtype=np.float64)
        return self.readout_.predict(Xv)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Class labels (n,)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return np.asarray(self.classes_[(scores > 0).astype(int)])
        return np.asarray(self.classes_[np.argmax(scores, axis=1)])
