"""The dense reference of the plastic simulation: every synapse of every sample updated each ms.

Slow by design (O(synapses x batch) per step); :func:`reservoir.spiking.simulate.simulate_plastic` with
``method="dense"`` runs it, and the event-driven loops (``plastic.py``, ``plastic_kernel.py``) are tested
against it.
"""

from __future__ import annotations

import torch

from reservoir.spiking import functional as F
from reservoir.spiking.liquid import SYN_INH, Liquid
from reservoir.spiking.sim_types import Plasticity, SimResult, bernoulli


def plastic_dense(
    liquid: Liquid,
    p_in: torch.Tensor,
    steps: int,
    gen: torch.Generator,
    plasticity: Plasticity,
    w_start: torch.Tensor,
    a_start: torch.Tensor | None,
    decay: float,
    params: F.LIFParams,
    record: int,
) -> SimResult:
    """The reference: every synapse of every sample updated by :func:`F.stdp_dw` each step."""
    n, n_in = liquid.n, liquid.n_in
    batch = p_in.shape[0]
    pre, post = torch.from_numpy(liquid.pre), torch.from_numpy(liquid.post)
    inh = torch.from_numpy(liquid.syn_class == SYN_INH)
    lo = torch.from_numpy(liquid.lower_bounds())
    hi = torch.from_numpy(liquid.upper_bounds())
    w = (w_start[:, None] if w_start.dim() == 1 else w_start).expand(-1, batch).contiguous().clone()
    a = torch.full((batch,), plasticity.a0) if a_start is None else a_start.clone()
    eta, w_astro, b_astro = plasticity.eta_plus, plasticity.w_astro, plasticity.b_astro
    p_t = p_in.T.contiguous()
    state = F.lif_init((n, batch))
    s_all = torch.zeros((n + n_in, batch))
    x_all = torch.zeros((n + n_in, batch))
    counts = torch.zeros((n, batch))
    raster = torch.zeros((steps, n, min(record, batch)), dtype=torch.bool) if record > 0 else None
    n_in_spikes = 0.0
    for t in range(steps):
        syn = torch.zeros((n, batch)).index_add_(0, post, w * s_all[pre])
        state = F.lif_step(state, syn, 0.0, params)
        s_in = bernoulli(p_t, gen)
        n_in_spikes += float(s_in.sum())
        s_new = torch.cat([state.s, s_in])
        dep: torch.Tensor | float = a if plasticity.astro else eta
        if not isinstance(dep, torch.Tensor):
            dep = torch.full((batch,), dep)
        dw = F.stdp_dw(x_all[pre], s_new[pre], x_all[post], s_new[post], inh[:, None], eta, dep[None, :])
        w = torch.clamp(w + dw, lo[:, None], hi[:, None])
        x_all = F.trace_step(x_all, s_new)
        if plasticity.astro:
            a = F.astro_step(a, state.s.sum(0), s_in.sum(0), w_astro, b_astro, plasticity.tau_astro)
        s_all = s_new
        counts += state.s
        if raster is not None:
            raster[t] = state.s[:, : raster.shape[2]] > 0
        if decay != 1.0:
            eta, w_astro, b_astro, a = eta * decay, w_astro * decay, b_astro * decay, a * decay
    return SimResult(
        counts=counts.T.contiguous(), raster=raster, weights=w, astro=a, input_spikes=n_in_spikes
    )
