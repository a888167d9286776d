"""Spiking liquid reservoirs in torch: ``lsm``, ``lsm-stdp`` and ``nalsm`` (Ivanov & Michmizos 2021).

Registry factories (``reservoir.registry``): :func:`make_lsm`, :func:`make_lsm_stdp`, :func:`make_nalsm`,
or :func:`make_liquid_reservoir` by kind. torch is imported only when a reservoir is built, so
:mod:`reservoir.spiking.idx` (the MNIST IDX loader) works without the ``neuro`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reservoir.registry import ReservoirSpec
    from reservoir.spiking.reservoir import LiquidReservoir

__all__ = ["make_liquid_reservoir", "make_lsm", "make_lsm_stdp", "make_nalsm"]


def make_liquid_reservoir(
    kind: str, n_inputs: int, size: int | None = None, seed: int = 0, **opts: Any
) -> LiquidReservoir:
    """A liquid of ``kind`` ("lsm", "lsm-stdp", "nalsm"); ``opts`` are :class:`LiquidConfig` fields."""
    from reservoir.spiking.reservoir import LiquidConfig, LiquidReservoir

    return LiquidReservoir(n_inputs, LiquidConfig.from_options(kind, size, opts), seed)


def make_lsm(spec: ReservoirSpec) -> LiquidReservoir:
    """Registry factory for ``lsm`` (fixed weights)."""
    return make_liquid_reservoir("lsm", spec.n_inputs, spec.size, spec.seed, **spec.options)


def make_lsm_stdp(spec: ReservoirSpec) -> LiquidReservoir:
    """Registry factory for ``lsm-stdp`` (plain STDP, NALSM schedule without the astrocyte)."""
    return make_liquid_reservoir("lsm-stdp", spec.n_inputs, spec.size, spec.seed, **spec.options)


def make_nalsm(spec: ReservoirSpec) -> LiquidReservoir:
    """Registry factory for ``nalsm`` (STDP + astrocyte)."""
    return make_liquid_reservoir("nalsm", spec.n_inputs, spec.size, spec.seed, **spec.options)
