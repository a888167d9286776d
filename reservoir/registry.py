"""Reservoir names -> factories, and the interface every reservoir implements (in :mod:`reservoir.spec`).

A factory takes a :class:`ReservoirSpec` and returns an object implementing one or both of:

* :class:`SeriesReservoir` (time-series tasks: narma10, memory-capacity, mackey-glass, forecast)::

      state_dim: int                      # N, columns of the state matrix
      reset() -> None                     # back to the initial state (same seed -> same states)
      run(u: (T, d_in) float64) -> (T, N) # drive with T steps; STATEFUL: continues from the last state

  ``u`` is already scaled from the training split to [-1, 1]. Row t of the result is the state after
  input t. The runner calls ``reset()`` then ``run`` over washout + train + test in one or more calls, and
  for free-run tasks feeds one step at a time (``run(u[None, :])``).

* :class:`SampleReservoir` (classification: digits, classify)::

      fit_transform(X_train: (n, d) float64) -> (n, N)  # may adapt without labels (e.g. STDP), then features
      transform(X: (n, d) float64) -> (n, N)            # fixed after fit_transform

  ``X`` is scaled per feature from the training split to [0, 1]. Samples are independent.

All randomness derives from ``spec.seed``. A reservoir that does not support a task kind simply lacks the
methods; the runner raises :class:`UnsupportedTask`. Extra keyword options arrive in ``spec.options``.
Spiking reservoirs (``lsm``, ``lsm-stdp``, ``nalsm``) are imported lazily from :mod:`reservoir.spiking`,
which must export ``make_lsm(spec)``, ``make_lsm_stdp(spec)`` and ``make_nalsm(spec)``.
"""

from __future__ import annotations

import importlib

from reservoir.asic import make_asic
from reservoir.baselines import make_delay_line, make_poisson_null
from reservoir.esn import make_esn
from reservoir.spec import Factory, ReservoirSpec, SampleReservoir, SeriesReservoir, UnsupportedTask

__all__ = [
    "NEURO_HINT",
    "REGISTRY",
    "Factory",
    "ReservoirSpec",
    "SampleReservoir",
    "SeriesReservoir",
    "UnsupportedTask",
    "make_reservoir",
    "register",
]

NEURO_HINT = "install the neuro extra: pip install '.[neuro]'"


def _spiking(attr: str) -> Factory:
    def factory(spec: ReservoirSpec) -> object:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"reservoir needs torch: {NEURO_HINT}") from exc
        try:
            module = importlib.import_module("reservoir.spiking")
            make = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise ImportError(f"reservoir.spiking.{attr} is not available ({exc}); {NEURO_HINT}") from exc
        return make(spec)

    return factory


#: Name -> factory. Add entries with :func:`register`.
REGISTRY: dict[str, Factory] = {
    "esn": make_esn,
    "delay-line": make_delay_line,
    "poisson-null": make_poisson_null,
    "asic": make_asic,
    "lsm": _spiking("make_lsm"),
    "lsm-stdp": _spiking("make_lsm_stdp"),
    "nalsm": _spiking("make_nalsm"),
}


def register(name: str, factory: Factory) -> None:
    """Add or replace a reservoir factory."""
    REGISTRY[name] = factory


def make_reservoir(name: str, spec: ReservoirSpec) -> object:
    """Instantiate a reservoir by name (a caller that wants the instances, e.g. for ``info()``, keeps the
    returned object: :func:`reservoir.bench.bench_seed` with ``with_info``)."""
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown reservoir {name!r}; choose from {', '.join(sorted(REGISTRY))}") from None
    return factory(spec)
