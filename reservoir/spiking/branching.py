"""Branching factor of a spike raster (NALSM ``compute_branching_factor.py``)."""

from __future__ import annotations

import math

import numpy as np
import torch

from reservoir.spiking.liquid import Liquid

# Branching-factor window (NALSM compute_branching_factor.py: buffer 25 ms, dt 4 ms).
BF_BUFFER_MS = 25
BF_DT_MS = 4


def _sparse(rows: np.ndarray, cols: np.ndarray, n: int) -> torch.Tensor:
    idx = torch.from_numpy(np.stack([rows, cols]))
    return torch.sparse_coo_tensor(idx, torch.ones(rows.size), (n, n), check_invariants=False).coalesce()


def branching_factor(
    raster: torch.Tensor, liquid: Liquid, dt: int = BF_DT_MS, buffer: int = BF_BUFFER_MS
) -> float:
    """Branching factor as NALSM's compute_branching_factor.py (raster: (T, n, batch) bool).

    For each liquid spike of neuron j at t in [buffer + dt, T - buffer - dt): post = spikes of j's
    postsynaptic liquid neurons in [t+1, t+1+dt), pre = spikes of j's presynaptic liquid neurons in
    [t-dt, t); ratio post / max(pre, 1); averaged over j's spikes, then over (neuron, sample) pairs that
    spiked. Only spikes inside [buffer, T - buffer) count. Returns NaN when no spike qualifies.
    """
    steps, n, batch = raster.shape
    lo, hi = buffer + dt, steps - buffer - dt
    if hi <= lo:
        return math.nan
    r = raster.to(torch.float32).clone()
    r[:buffer] = 0
    r[steps - buffer :] = 0
    csum = torch.cat([torch.zeros((1, n, batch)), r.cumsum(0)])  # csum[t] = sum r[:t]
    ts = torch.arange(lo, hi)
    pre_win = csum[ts] - csum[ts - dt]  # spikes in [t-dt, t), (T', n, batch)
    post_win = csum[ts + 1 + dt] - csum[ts + 1]  # spikes in [t+1, t+1+dt)
    # post count for j: sum_i m[i, j] post_win[i];  pre count for j: sum_k m[j, k] pre_win[k]
    rec = liquid.recurrent
    m = _sparse(liquid.post[rec], liquid.pre[rec], n)  # [post, pre]
    mt = _sparse(liquid.pre[rec], liquid.post[rec], n)  # [pre, post]
    tb = (hi - lo) * batch
    post_cnt = (mt @ post_win.permute(1, 0, 2).reshape(n, tb)).reshape(n, hi - lo, batch).permute(1, 0, 2)
    pre_cnt = (m @ pre_win.permute(1, 0, 2).reshape(n, tb)).reshape(n, hi - lo, batch).permute(1, 0, 2)
    spikes = r[lo:hi]
    ratio = post_cnt / pre_cnt.clamp_min(1.0) * spikes
    n_spk = spikes.sum(0)  # (n, batch)
    per_neuron = ratio.sum(0)[n_spk > 0] / n_spk[n_spk > 0]
    return float(per_neuron.mean()) if per_neuron.numel() else math.nan
