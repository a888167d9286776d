"""Sufficient statistics of a ridge fit: mergeable blocks of rows (the data side of :mod:`reservoir.readout`).

:class:`RidgeStats` holds the weighted count, the means and the centred co-moments of a block of rows
(equivalent to X^T X, X^T y, the column sums and n, but numerically stable). Blocks merge exactly with ``+``
(Chan et al.'s parallel update), so statistics from several chunks, processes or hosts sum into one fit.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]

#: Rows per block when statistics are accumulated: bounds the temporary centred copy to ~16 MB at d=500.
CHUNK_ROWS = 4096


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
