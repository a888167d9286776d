"""Baselines beside every number: the delay line (a linear memory alone) and the Poisson null (shot noise).

* ``delay-line``: on series tasks the state is the last k inputs (a shift register, k = --size, default
  100); on classification it is the raw (scaled) input features, i.e. a linear classifier on the pixels.
* ``poisson-null``: the very same feature pipeline as ``asic`` (:class:`reservoir.asic.AsicReservoir`),
  fed by a :class:`reservoir.substrate.PoissonSubstrate` whose rate ignores the input. It must score at
  chance (NMSE ~ 1, accuracy ~ 1 / classes); if not, the pipeline leaks the target.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from reservoir.asic import AsicReservoir, make_poisson_asic
from reservoir.spec import ReservoirSpec

F64 = NDArray[np.float64]

#: Default shift-register length (same default state size as the ESN).
DEFAULT_DELAYS = 100


class DelayLine:
    """Shift register of the last ``k`` inputs (series) / identity on the features (samples)."""

    def __init__(self, n_inputs: int, k: int = DEFAULT_DELAYS) -> None:
        self.n_inputs = n_inputs
        self.k = k
        self.state_dim = k * n_inputs
        self._hist = np.zeros((k - 1, n_inputs))

    def reset(self) -> None:
        """Empty register (zeros)."""
        self._hist = np.zeros((self.k - 1, self.n_inputs))

    def run(self, u: F64) -> F64:
        """States (T, k * d): row t = [u(t), u(t-1), ..., u(t-k+1)] flattened; continues across calls."""
        u = np.asarray(u, dtype=np.float64).reshape(len(u), -1)
        full = np.vstack([self._hist, u])
        T = u.shape[0]
        out = np.empty((T, self.k, self.n_inputs))
        for j in range(self.k):
            out[:, j, :] = full[self.k - 1 - j : self.k - 1 - j + T]
        self._hist = full[-(self.k - 1) :] if self.k > 1 else np.zeros((0, self.n_inputs))
        return out.reshape(T, self.state_dim)

    def fit_transform(self, X: F64) -> F64:
        """The features themselves."""
        return np.asarray(X, dtype=np.float64)

    def transform(self, X: F64) -> F64:
        """The features themselves."""
        return np.asarray(X, dtype=np.float64)


def make_delay_line(spec: ReservoirSpec) -> DelayLine:
    """Registry factory: k = spec.size (default 100) delays per input."""
    size = spec.size or DEFAULT_DELAYS
    return DelayLine(spec.n_inputs, max(1, size // max(spec.n_inputs, 1)))


def make_poisson_null(spec: ReservoirSpec) -> AsicReservoir:
    """Registry factory: the asic pipeline on homogeneous Poisson events (``rate_hz``, ``n_chips``)."""
    return make_poisson_asic(spec)
