"""Benchmark generators written from their definitions (see docs/methods.md): NARMA10, i.i.d. memory input,
Mackey-Glass (RK4 with linear history interpolation)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

#: NARMA10 input range, Atiya & Parlos (2000).
NARMA_U_HIGH = 0.5
#: Mackey-Glass constants: dx/dt = a x(t-tau) / (1 + x(t-tau)^n) - b x (Mackey & Glass 1977, tau=17 chaotic).
MG_A, MG_B, MG_N, MG_TAU = 0.2, 0.1, 10, 17.0
#: RK4 step (time units) and the initial constant history value.
MG_DT, MG_X0 = 0.1, 1.2


def narma10(u: F64) -> F64:
    """NARMA10 output for input u (T,).

    y(t+1) = 0.3 y(t) + 0.05 y(t) sum_{i=0..9} y(t-i) + 1.5 u(t-9) u(t) + 0.1.

    Returns y (T + 1,) with y[0..9] = 0, so ``y[t + 1]`` is the target after input ``u[t]``.
    """
    T = u.shape[0]
    y = np.zeros(T + 1)
    for t in range(9, T):
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * y[t - 9 : t + 1].sum() + 1.5 * u[t - 9] * u[t] + 0.1
    return y


def narma10_series(T: int, seed: int) -> tuple[F64, F64]:
    """Input u ~ U[0, 0.5] (T,) and the aligned target y[t] = NARMA10 output after u[t] (T,).

    The recurrence can diverge for rare inputs; then the next seed's draw is used (seed + 1000 k),
    so a given seed always gives the same series.
    """
    for k in range(100):
        rng = np.random.default_rng(seed + 1000 * k)
        u = rng.uniform(0.0, NARMA_U_HIGH, T)
        y = narma10(u)
        if np.all(np.isfinite(y)) and np.max(np.abs(y)) < 10.0:
            return u, y[1:]
    raise RuntimeError("NARMA10 diverged for 100 consecutive draws")  # pragma: no cover


def memory_input(T: int, seed: int) -> F64:
    """i.i.d. input u ~ U[-1, 1] (T,) for the linear memory-capacity task."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, T)


def delayed_targets(u: F64, kmax: int) -> F64:
    """Targets (T, kmax): column k-1 holds u(t - k); entries before the start are 0 (inside the washout)."""
    T = u.shape[0]
    out = np.zeros((T, kmax))
    for k in range(1, kmax + 1):
        out[k:, k - 1] = u[: T - k]
    return out


def _mg_rhs(x: float, x_tau: float) -> float:
    return MG_A * x_tau / (1.0 + x_tau**MG_N) - MG_B * x


def mackey_glass(
    n_samples: int, sample_every: float = 1.0, transient: float = 500.0, x0: float = MG_X0
) -> F64:
    """Mackey-Glass series sampled every ``sample_every`` time units after discarding ``transient``.

    RK4 with step MG_DT; the delayed term at half steps is linearly interpolated from the stored grid;
    history x(t) = x0 for t <= 0.
    """
    dt = MG_DT
    lag = round(MG_TAU / dt)
    stride = round(sample_every / dt)
    n_steps = round(transient / dt) + n_samples * stride
    x = np.empty(lag + n_steps + 1)
    x[: lag + 1] = x0
    for i in range(lag, lag + n_steps):
        xt = x[i]
        d0 = x[i - lag]
        d1 = x[i - lag + 1]
        dh = 0.5 * (d0 + d1)
        k1 = _mg_rhs(xt, d0)
        k2 = _mg_rhs(xt + 0.5 * dt * k1, dh)
        k3 = _mg_rhs(xt + 0.5 * dt * k2, dh)
        k4 = _mg_rhs(xt + dt * k3, d1)
        x[i + 1] = xt + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    start = lag + round(transient / dt)
    return np.asarray(x[start : start + n_samples * stride : stride], dtype=np.float64)
