"""The one ridge readout every reservoir shares: a scikit-learn estimator fitted from sufficient statistics.

:class:`RidgeStats` holds the weighted count, the means and the centred co-moments of a block of rows
(equivalent to X^T X, X^T y, the column sums and n, but numerically stable). Blocks merge exactly with ``+``
(Chan et al.'s parallel update), so statistics from several chunks, processes or hosts sum into one fit, and
:meth:`RidgeReadout.partial_fit` streams without holding the data.

Alpha selection (one factorisation, after which every alpha on the grid is cheap):

* ``alpha="gcv"``: generalised cross-validation from the pooled statistics (also works when streaming):
  one eigendecomposition, then O(d k) per alpha;
* ``alpha="cv"``: exact k-fold CV over ``n_folds`` contiguous folds kept as per-fold statistics; each
  fold's training statistics are the total minus the fold. Instead of an eigendecomposition per fold the
  training matrix is reduced once to tridiagonal form Q T Q^T (LAPACK ``sytrd``, about a quarter of
  ``eigh``'s time at d = 400): every alpha is then an O(d) solve of (T + alpha I), and the reflectors Q are
  applied to all alphas' solutions in one blocked call (``ormqr``). Five folds at d = 400 cost about two
  eigendecompositions in all (was five; CPU time 35 vs 74 ms for 27 alphas on a loaded Xeon).
  Validation errors come from the fold's own statistics, so nothing needs the raw rows. Should a shifted
  T not be positive definite (alpha = 0 on a singular fold), that fold falls back to the
  eigendecomposition (eigenvalues clipped at 0).

The intercept is never penalised (the fit is on centred statistics), so for a fixed alpha the predictions
equal :class:`sklearn.linear_model.Ridge` (``solver="cholesky"``) to rounding.
"""

from __future__ import annotations

import io
import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.linalg.lapack as lapack
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

F64 = NDArray[np.float64]

#: Rows per block when fit() accumulates statistics: bounds the temporary centred copy to ~16 MB at d=500.
CHUNK_ROWS = 4096
#: Default alpha grid for "cv"/"gcv" (reservoir states are O(1); the anchors need ~1e-8..1e-4).
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-10, 3, 27))


@dataclass(frozen=True)
class RidgeStats:
    """Sufficient statistics of a block of rows (weighted).

    ``n`` total weight (rows when unweighted), ``rows`` row count, ``x_mean`` (d,), ``y_mean`` (k,),
    ``cxx`` (d, d) = sum w (x - x_mean)(x - x_mean)^T, ``cxy`` (d, k), ``cyy`` (k,) centred sums of squares.
    X^T X = cxx + n x_mean x_mean^T, and likewise for X^T y.
    """

    n: float
    rows: int
    x_mean: F64
    y_mean: F64
    cxx: F64
    cxy: F64
    cyy: F64

    @classmethod
    def empty(cls, n_features: int, n_targets: int) -> RidgeStats:
        """Statistics of zero rows."""
        d, k = n_features, n_targets
        z = np.zeros
        return cls(0.0, 0, z(d), z(k), z((d, d)), z((d, k)), z(k))

    @classmethod
    def from_arrays(cls, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> RidgeStats:
        """Statistics of rows X (n, d) and targets y (n,) or (n, k), optionally weighted (n,)."""
        Xa = np.asarray(X, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        if ya.ndim == 1:
            ya = ya[:, None]
        total = cls.empty(Xa.shape[1], ya.shape[1])
        w_all = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        for start in range(0, Xa.shape[0], CHUNK_ROWS):
            sl = slice(start, start + CHUNK_ROWS)
            total = total + cls._block(Xa[sl], ya[sl], None if w_all is None else w_all[sl])
        return total

    @classmethod
    def _block(cls, X: F64, y: F64, w: F64 | None) -> RidgeStats:
        if w is None:
            n = float(X.shape[0])
            xm = X.mean(axis=0)
            ym = y.mean(axis=0)
            Xc = X - xm
            yc = y - ym
            return cls(n, X.shape[0], xm, ym, Xc.T @ Xc, Xc.T @ yc, np.einsum("ij,ij->j", yc, yc))
        n = float(w.sum())
        if n <= 0.0:
            return cls.empty(X.shape[1], y.shape[1])
        xm = (w @ X) / n
        ym = (w @ y) / n
        Xc = X - xm
        yc = y - ym
        Xw = Xc * w[:, None]
        return cls(n, X.shape[0], xm, ym, Xw.T @ Xc, Xw.T @ yc, np.einsum("i,ij,ij->j", w, yc, yc))

    def __add__(self, other: RidgeStats) -> RidgeStats:
        if other.n == 0.0:
            return self
        if self.n == 0.0:
            return other
        n = self.n + other.n
        dx = other.x_mean - self.x_mean
        dy = other.y_mean - self.y_mean
        f = self.n * other.n / n
        return RidgeStats(
            n,
            self.rows + other.rows,
            self.x_mean + dx * (other.n / n),
            self.y_mean + dy * (other.n / n),
            self.cxx + other.cxx + f * np.outer(dx, dx),
            self.cxy + other.cxy + f * np.outer(dx, dy),
            self.cyy + other.cyy + f * dy * dy,
        )

    def __sub__(self, other: RidgeStats) -> RidgeStats:
        """Remove a block previously added (used for the training part of a CV fold)."""
        if other.n == 0.0:
            return self
        n = self.n - other.n
        if n <= 0.0:
            return RidgeStats.empty(self.x_mean.size, self.y_mean.size)
        xm = (self.n * self.x_mean - other.n * other.x_mean) / n
        ym = (self.n * self.y_mean - other.n * other.y_mean) / n
        dx = other.x_mean - xm
        dy = other.y_mean - ym
        f = n * other.n / self.n
        return RidgeStats(
            n,
            self.rows - other.rows,
            xm,
            ym,
            self.cxx - other.cxx - f * np.outer(dx, dx),
            self.cxy - other.cxy - f * np.outer(dx, dy),
            self.cyy - other.cyy - f * dy * dy,
        )

    def xtx(self) -> F64:
        """Uncentred X^T W X (d, d)."""
        return self.cxx + self.n * np.outer(self.x_mean, self.x_mean)

    def xty(self) -> F64:
        """Uncentred X^T W y (d, k)."""
        return self.cxy + self.n * np.outer(self.x_mean, self.y_mean)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of lists."""
        return {
            "n": self.n,
            "rows": self.rows,
            "x_mean": self.x_mean.tolist(),
            "y_mean": self.y_mean.tolist(),
            "cxx": self.cxx.tolist(),
            "cxy": self.cxy.tolist(),
            "cyy": self.cyy.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RidgeStats:
        """Inverse of :meth:`to_dict` (also accepts arrays)."""
        try:
            arr = {k: np.asarray(d[k], dtype=np.float64) for k in ("x_mean", "y_mean", "cxx", "cxy", "cyy")}
            nf, nt = arr["x_mean"].size, arr["y_mean"].size
            shapes = {"cxx": (nf, nf), "cxy": (nf, nt), "cyy": (nt,)}
            for k, shape in shapes.items():
                arr[k] = arr[k].reshape(shape)
            return cls(float(d["n"]), int(d["rows"]), **arr)
        except KeyError as exc:
            raise ValueError(f"RidgeStats: missing key {exc.args[0]!r}") from exc

    def to_bytes(self) -> bytes:
        """Compressed .npz bytes."""
        buf = io.BytesIO()
        d = self.to_dict()
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in d.items()}
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> RidgeStats:
        """Inverse of :meth:`to_bytes`."""
        with np.load(io.BytesIO(data)) as z:
            return cls.from_dict({k: z[k] for k in z.files})


def _solve(stats: RidgeStats, alpha: float) -> F64:
    """Weights (d, k) minimising |y - x w - b|^2 + alpha |w|^2 from centred statistics."""
    d = stats.cxx.shape[0]
    A = stats.cxx + alpha * np.eye(d)
    try:
        with warnings.catch_warnings():  # tiny alphas on collinear states: the CV chose it, do not nag
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            return np.asarray(scipy.linalg.solve(A, stats.cxy, assume_a="pos", check_finite=False))
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        return np.asarray(np.linalg.lstsq(A, stats.cxy, rcond=None)[0])


def _eig(stats: RidgeStats) -> tuple[F64, F64, F64]:
    """Eigenvalues s (d,), eigenvectors V (d, d) of cxx and P = V^T cxy (d, k)."""
    s, V = np.linalg.eigh(stats.cxx)
    s = np.clip(s, 0.0, None)
    return s, V, V.T @ stats.cxy


def gcv_errors(stats: RidgeStats, alphas: Sequence[float]) -> F64:
    """Generalised CV score per alpha (mean over targets): RSS/n / (1 - df/n)^2, df includes the intercept."""
    s, _, P = _eig(stats)
    n = max(stats.n, 1.0)
    out = np.empty(len(alphas))
    P2 = P * P
    for i, a in enumerate(alphas):
        g = 1.0 / (s + a)
        rss = stats.cyy - 2.0 * (g @ P2) + ((s * g * g) @ P2)
        df = float(np.sum(s * g)) + 1.0
        denom = max(1.0 - df / n, 1e-12) ** 2
        out[i] = float(np.mean(np.clip(rss, 0.0, None))) / n / denom
    return out


def _fold_sse(train: RidgeStats, val: RidgeStats, W: F64, m: int) -> F64:
    """Validation SSE (mean over the k targets) per alpha, from weights W (d, m*k) fitted on ``train``."""
    k = val.y_mean.size
    b = np.tile(train.y_mean, m) - train.x_mean @ W
    bias = np.tile(val.y_mean, m) - val.x_mean @ W - b
    quad = np.einsum("ij,ij->j", W, val.cxx @ W)
    cross = np.einsum("ij,ij->j", W, np.tile(val.cxy, (1, m)))
    per_target = val.n * bias * bias + np.tile(val.cyy, m) - 2.0 * cross + quad
    return np.asarray(per_target.reshape(m, k).mean(axis=1), dtype=np.float64)


def _weights_eig(train: RidgeStats, alphas: Sequence[float]) -> F64:
    """Ridge weights (d, m*k) for every alpha from one eigendecomposition (1/(s+alpha) taken as 0 at 0)."""
    s, V, P = _eig(train)
    blocks = []
    for a in alphas:
        with np.errstate(divide="ignore"):
            g = np.where(s + a > 0.0, 1.0 / (s + a), 0.0)
        blocks.append(P * g[:, None])
    return np.asarray(V @ np.hstack(blocks), dtype=np.float64)


def _weights_tridiagonal(train: RidgeStats, alphas: Sequence[float]) -> F64 | None:
    """Ridge weights (d, m*k) for every alpha from one tridiagonal reduction cxx = Q T Q^T; None if some
    T + alpha I is not positive definite (the caller then uses the eigendecomposition)."""
    d, k = train.cxy.shape
    if d < 3:
        return None
    (lw_trd, _) = lapack.dsytrd_lwork(d, lower=1)
    c, diag, off, tau, info = lapack.dsytrd(train.cxx, lower=1, lwork=max(int(lw_trd), d))
    if info != 0:
        return None
    # Q = diag(1, Q2) with Q2 = H(1)..H(d-1), the reflectors stored below the diagonal of c[1:, :-1].
    refl = c[1:, :-1]
    lwork = 64 * k * len(alphas) + 65 * 64  # blocked ormqr: ncols * nb + the T block (LAPACK >= 3.7)
    P = train.cxy.copy()
    P[1:], _, info = lapack.dormqr(b"L", b"T", refl, tau, P[1:], 64 * k + 65 * 64)
    if info != 0:
        return None
    G = np.empty((d, k * len(alphas)))
    for i, a in enumerate(alphas):
        _, _, g, info = lapack.dptsv(diag + a, off, P)
        if info != 0:
            return None
        G[:, i * k : (i + 1) * k] = g
    G[1:], _, info = lapack.dormqr(b"L", b"N", refl, tau, G[1:], lwork, overwrite_c=1)
    return G if info == 0 else None


def kfold_errors(
    folds: Sequence[RidgeStats],
    alphas: Sequence[float],
    method: str = "tridiagonal",
    total: RidgeStats | None = None,
) -> F64:
    """Pooled validation MSE per alpha (mean over targets) for k-fold CV given per-fold statistics.

    ``method``: "tridiagonal" (default; one ``sytrd`` per fold, eigendecomposition fallback) or "eig"
    (one eigendecomposition per fold). Both are exact; they agree to rounding. ``total``: the folds'
    sum if the caller already has it.
    """
    if method not in ("tridiagonal", "eig"):
        raise ValueError(f"method must be 'tridiagonal' or 'eig'; got {method!r}")
    if total is None:
        total = folds[0]
        for f in folds[1:]:
            total = total + f
    sse = np.zeros(len(alphas))
    with _one_blas_thread():  # sytrd is mostly level-2 BLAS: extra threads only spin (2x CPU when loaded)
        for val in folds:
            if val.n == 0.0:
                continue
            train = total - val
            W = _weights_tridiagonal(train, alphas) if method == "tridiagonal" else None
            if W is None:
                W = _weights_eig(train, alphas)
            sse += _fold_sse(train, val, W, len(alphas))
    return sse / max(total.n, 1.0)


_CONTROLLER: list[ThreadpoolController] = []


def _one_blas_thread() -> Any:
    """Context limiting BLAS to one thread (controller cached: ~15 us per use)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


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
            W = _solve(total, self.alpha_)
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
            W = _solve(raw, self.alpha_)
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
