"""Reservoir names -> factories, and the interface every reservoir implements.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

NEURO_HINT = "install the neuro extra: pip install '.[neuro]'"


@runtime_checkable
class SeriesReservoir(Protocol):
    """A driven dynamical system producing one state row per input step."""

    state_dim: int

    def reset(self) -> None: ...

    def run(self, u: F64) -> F64: ...


@runtime_checkable
class SampleReservoir(Protocol):
    """A feature map for independent samples (classification)."""

    def fit_transform(self, X: F64) -> F64: ...

    def transform(self, X: F64) -> F64: ...


class UnsupportedTask(ValueError):
    """The reservoir does not implement the interface the task needs."""


@dataclass(frozen=True)
class ReservoirSpec:
    """What a factory needs: ``n_inputs`` (d_in), ``size`` (N, the state size asked for; None = default),
    ``seed``, ``kind`` ("series" or "samples") and free-form ``options`` (e.g. ``substrate`` for asic)."""

    n_inputs: int
    seed: int = 0
    size: int | None = None
    kind: str = "series"
    options: dict[str, Any] = field(default_factory=dict)


Factory = Callable[[ReservoirSpec], object]


def _esn(spec: ReservoirSpec) -> object:
    from reservoir.esn import make_esn

    return make_esn(spec)


def _delay(spec: ReservoirSpec) -> object:
    from reservoir.baselines import make_delay_line

    return make_delay_line(spec)


def _poisson(spec: ReservoirSpec) -> object:
    from reservoir.baselines import make_poisson_null

    return make_poisson_null(spec)


def _asic(spec: ReservoirSpec) -> object:
    from reservoir.asic import make_asic

    return make_asic(spec)


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
    "esn": _esn,
    "delay-line": _delay,
    "poisson-null": _poisson,
    "asic": _asic,
    "lsm": _spiking("make_lsm"),
    "lsm-stdp": _spiking("make_lsm_stdp"),
    "nalsm": _spiking("make_nalsm"),
}


def register(name: str, factory: Factory) -> None:
    """Add or replace a reservoir factory."""
    REGISTRY[name] = factory


def make_reservoir(name: str, spec: ReservoirSpec) -> object:
    """Instantiate a reservoir by name."""
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown reservoir {name!r}; choose from {', '.join(sorted(REGISTRY))}") from None
    return factory(spec)


@contextmanager
def recording(name: str) -> Iterator[list[object]]:
    """Within the block, every reservoir built under ``name`` is also appended to the yielded list (so a
    caller of :func:`make_reservoir` indirectly, e.g. the bench runner, can read ``info()`` afterwards)."""
    built: list[object] = []
    original = REGISTRY[name]

    def factory(spec: ReservoirSpec) -> object:
        res = original(spec)
        built.append(res)
        return res

    REGISTRY[name] = factory
    try:
        yield built
    finally:
        REGISTRY[name] = original
