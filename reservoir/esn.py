"""Echo-state network: leaky tanh units, sparse recurrent matrix rescaled to a spectral radius.

x(t) = (1 - leak) x(t-1) + leak tanh(W x(t-1) + W_in u(t) + b), float64. The input drive W_in u + b is
computed for all steps at once into the output array; the recurrence is one dense (N <= DENSE_MAX) or CSR
mat-vec per step accumulated into that step's row, then tanh in place (no allocation per step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray

from reservoir.spec import ReservoirSpec

try:  # the kernel behind CSR @ vector, without scipy's per-call checks (falls back to W @ x)
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover
    _csr_matvec = None

F64 = NDArray[np.float64]

#: Default state size (``asicrc bench --size`` default 100).
DEFAULT_SIZE = 100
#: Up to this many units the spectral radius comes from dense eigenvalues and ``_W`` (used for batches of
#: samples) is dense; above it ARPACK and CSR. The per-step recurrence in run() always uses the CSR kernel:
#: at 10 % density it beats dense mat-vec from N = 50 (2.7 vs 3.7 us/step at N = 100, CPU time, Xeon).
DENSE_MAX = 150
#: Inputs per step when a static sample is presented as a sequence (digits: 8 rows of 8 pixels).
SAMPLE_CHUNK = 8
#: Largest share of the host's physical memory the sample features may take (the states of every step are
#: concatenated: n x steps x N float64, held twice while stacked).
MAX_FEATURE_MEMORY_FRACTION = 0.5


def physical_memory_bytes() -> int:
    """The host's physical memory (bytes); 0 where the OS does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def check_feature_memory(n: int, steps: int, units: int, total: int | None = None) -> None:
    """ValueError (one line) when n samples x steps x units float64 features, held twice while stacked, would
    take more than MAX_FEATURE_MEMORY_FRACTION of ``total`` bytes (default: this host's memory)."""
    total = physical_memory_bytes() if total is None else total
    need = 2 * 8 * n * steps * units
    if total and need > MAX_FEATURE_MEMORY_FRACTION * total:
        raise ValueError(
            f"esn features for {n} samples: {steps} steps x {units} units = {steps * units} per sample, "
            f"{need / 1e9:.1f} GB while stacked, more than half this host's {total / 1e9:.1f} GB: "
            "pool the states (--set pool=1: the mean state), use fewer samples (--n-train/--n-test) or a "
            "smaller --size"
        )


@dataclass(frozen=True)
class ESNParams:
    """Hyper-parameters. Defaults chosen by a small grid on NARMA10 with data seed 1 (the benchmark uses
    data seed 0): small input scaling around a large bias works the tanh's curvature gently."""

    size: int = DEFAULT_SIZE
    spectral_radius: float = 0.9
    leak: float = 1.0
    input_scaling: float = 0.02
    bias_scaling: float = 0.5
    density: float = 0.1
    input_density: float = 1.0
    #: Sample features: 0 = the state after every step, concatenated (steps x N); K >= 1 = the state averaged
    #: over K consecutive, near-equal runs of steps, concatenated (K x N; 1 = the mean state, the analogue of
    #: a liquid's spike counts, and what fits MNIST-sized sets in memory).
    pool: int = 0

    def __post_init__(self) -> None:
        if self.pool < 0 or int(self.pool) != self.pool:
            raise ValueError(f"esn option pool must be an integer >= 0, got {self.pool!r}")


class ESN:
    """Leaky tanh echo-state network implementing SeriesReservoir and SampleReservoir (see registry)."""

    def __init__(self, n_inputs: int, params: ESNParams = ESNParams(), seed: int = 0) -> None:
        self.params = params
        self.n_inputs = n_inputs
        self.seed = seed
        self.state_dim = params.size
        self._built = False
        self._x = np.zeros(params.size)

    def _build(self, n_inputs: int) -> None:
        p, N = self.params, self.params.size
        rng = np.random.default_rng(self.seed)
        W = sp.random(N, N, density=p.density, random_state=rng, data_rvs=lambda k: rng.uniform(-1, 1, k))
        W = W.tocsr()
        if N <= DENSE_MAX:
            rho = float(np.max(np.abs(np.linalg.eigvals(W.toarray()))))
        else:
            rho = float(np.max(np.abs(spla.eigs(W, k=1, which="LM", return_eigenvectors=False, tol=1e-9))))
        W = W * (p.spectral_radius / rho) if rho > 0 else W
        self._W: F64 | sp.csr_matrix = W.toarray() if N <= DENSE_MAX else W
        self._Wcsr: sp.csr_matrix = W  # run() always uses the CSR kernel: faster than dense from N = 50
        Win = rng.uniform(-1, 1, (N, n_inputs))
        if p.input_density < 1.0:
            Win *= rng.random((N, n_inputs)) < p.input_density
        self._Win = Win * p.input_scaling
        self._b = rng.uniform(-1, 1, N) * p.bias_scaling
        self._built = True

    def reset(self) -> None:
        """Zero state."""
        self._x = np.zeros(self.state_dim)

    def run(self, u: F64) -> F64:
        """States (T, N) for inputs u (T, d_in), continuing from the current state."""
        u = np.asarray(u, dtype=np.float64).reshape(len(u), -1)
        if not self._built:
            self._build(u.shape[1])
        # out starts as the input drive W_in u + b (all steps at once); each row then gets W x(t-1) added
        # and tanh applied in place, so the loop allocates nothing (iterating `out` yields row views).
        out = u @ self._Win.T + self._b
        a, x = self.params.leak, self._x
        tanh, multiply, add = np.tanh, np.multiply, np.add
        if _csr_matvec is not None:
            N, ip, ix, val = self.state_dim, self._Wcsr.indptr, self._Wcsr.indices, self._Wcsr.data
            if a == 1.0:
                for row in out:
                    _csr_matvec(N, N, ip, ix, val, x, row)  # row += W x, no scipy per-call checks
                    x = tanh(row, out=row)
            else:
                keep = np.empty(N)
                for row in out:
                    _csr_matvec(N, N, ip, ix, val, x, row)
                    tanh(row, out=row)
                    multiply(x, 1.0 - a, out=keep)  # x may be the previous row: scale it before overwriting
                    multiply(row, a, out=row)
                    x = add(row, keep, out=row)
        else:  # pragma: no cover - scipy without the private kernel
            W = self._W
            for t in range(u.shape[0]):
                x = (1.0 - a) * x + a * tanh(W @ x + out[t])
                out[t] = x
        self._x = np.array(x)
        return out

    def _samples(self, X: F64) -> F64:
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        steps = -(-d // SAMPLE_CHUNK)
        padded = np.zeros((n, steps * SAMPLE_CHUNK))
        padded[:, :d] = X
        seq = padded.reshape(n, steps, SAMPLE_CHUNK)
        k = min(int(self.params.pool), steps) if self.params.pool else steps  # feature blocks of N
        check_feature_memory(n, k, self.state_dim)
        if not self._built:
            self._build(SAMPLE_CHUNK)
        x = np.zeros((n, self.state_dim))
        a = self.params.leak
        runs = np.array_split(np.arange(steps), k) if k else []  # k near-equal runs of steps (1 each: pool 0)
        feats = []
        for run in runs:
            acc: F64 | None = None
            for s in run:
                pre = x @ self._W.T + seq[:, s, :] @ self._Win.T + self._b
                x = (1.0 - a) * x + a * np.tanh(pre)  # a new array every step: safe to keep or sum
                acc = x if acc is None else acc + x
            assert acc is not None
            feats.append(acc / len(run) if len(run) > 1 else acc)  # one step per run (pool 0): no copy
        return np.hstack(feats)

    def fit_transform(self, X: F64) -> F64:
        """Features (n, steps * N): each sample shown as rows of SAMPLE_CHUNK inputs, the state after every
        step concatenated; with ``pool`` K, (n, K * N): the states averaged over K runs of steps."""
        return self._samples(X)

    def transform(self, X: F64) -> F64:
        """As fit_transform (nothing adapts)."""
        return self._samples(X)


def make_esn(spec: ReservoirSpec) -> ESN:
    """Registry factory: size from spec.size, other ESNParams fields from spec.options."""
    fields = set(ESNParams.__dataclass_fields__) - {"size"}
    unknown = set(spec.options) - fields
    if unknown:
        raise ValueError(f"unknown esn option(s) {sorted(unknown)}; allowed: {sorted(fields)}")
    try:
        kw: dict[str, Any] = {k: float(v) for k, v in spec.options.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"esn options must be numbers: {exc}") from exc
    if "pool" in kw:
        pool = kw["pool"]
        if pool != int(pool):
            raise ValueError(f"esn option pool must be an integer >= 0, got {spec.options['pool']!r}")
        kw["pool"] = int(pool)
    params = ESNParams(size=spec.size or DEFAULT_SIZE, **kw)
    return ESN(spec.n_inputs, params, spec.seed)
