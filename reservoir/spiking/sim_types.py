"""What the liquid simulations share: the plasticity settings, the result record, the Bernoulli draw."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reservoir.spiking import functional as F


@dataclass(frozen=True)
class Plasticity:
    """STDP (+ astrocyte) settings; ``astro=False`` is plain STDP with the depression rate fixed at eta."""

    eta_plus: float = F.ETA_PLUS
    astro: bool = True
    a0: float = F.A0
    w_astro: float = F.W_ASTRO_1000
    b_astro: float = F.B_ASTRO
    tau_astro: float = F.TAU_ASTRO_MS


@dataclass
class SimResult:
    """Spike counts ``(batch, n)``; optional raster ``(T, n, batch)`` bool; plastic runs add weights and A."""

    counts: torch.Tensor
    raster: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    astro: torch.Tensor | None = None
    input_spikes: float = 0.0


def bernoulli(p_t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Float32 spikes: 1 where a uniform from ``gen`` falls below ``p_t`` (any shape)."""
    return (torch.rand(p_t.shape, generator=gen) < p_t).to(torch.float32)
