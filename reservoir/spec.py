"""The interface every reservoir implements and the spec a factory takes (the base of :mod:`reservoir`).

The protocols are described in :mod:`reservoir.registry`, which maps names to factories; the makers
(:mod:`reservoir.esn`, :mod:`reservoir.baselines`, :mod:`reservoir.asic`, :mod:`reservoir.spiking`) import
only this module, and only the registry imports the makers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


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
