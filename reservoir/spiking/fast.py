"""Event-driven fixed-weight liquid: the hot loop of :func:`reservoir.spiking.simulate.simulate_fixed`.

Liquid spikes are sparse (~5 Hz, 0.5 % of neurons per 1 ms step), so the recurrent current is scattered
from the outgoing synapses of the neurons that spiked (a padded per-neuron table, one ``index_add_``)
instead of a CSR x dense product over the whole batch; the dense Bernoulli input (~12 of 64 inputs per ms)
goes through one BLAS ``mm`` into a preallocated buffer. Threshold crossings are found with one compare and
``nonzero``; refractoriness is the step of each neuron's last spike (int32), checked only at the
crossings. Per step that is 4 dense passes over the ``(n, batch)`` state instead of ~12.

The kernels are the ones of :func:`reservoir.spiking.functional.lif_step` in the same order; only the
summation order of the synaptic input differs (scatter vs CSR rows), so spikes are bit-identical to the
CSR backend whenever the weights make those sums exact (the default +-1 weights, or any dyadic weights of
moderate size), and equal within float rounding otherwise (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reservoir.spiking import functional as F
from reservoir.spiking.liquid import Liquid

NEVER = -(2**30)  # "last spike" step of a neuron that has not spiked (far beyond any refractory period)


class Crossings:
    """Flat positions where ``v >= threshold``, for a fixed number of elements.

    The mask is padded to whole 8-byte words: ``nonzero`` scans the int64 words (8x fewer elements; it was
    the top cost of the loop), then only the few words holding a crossing are expanded to positions.
    """

    def __init__(self, size: int, device: torch.device | None = None) -> None:
        n_words = -(-size // 8)
        self._flat = torch.zeros(n_words * 8, dtype=torch.bool, device=device)
        self._mask = self._flat[:size]
        self._words = self._flat.view(torch.int64)
        self._bytes = self._flat.view(n_words, 8)
        self._offset = torch.arange(8, device=device)

    def find(self, v: torch.Tensor, threshold: float) -> torch.Tensor:
        """Sorted flat indices (int64) of ``v.view(-1) >= threshold``."""
        torch.ge(v.view(-1), threshold, out=self._mask)
        words = self._words.nonzero().view(-1)
        if not words.numel():
            return words
        w_i, byte = self._bytes.index_select(0, words).nonzero(as_tuple=True)
        return words.index_select(0, w_i).mul_(8).add_(self._offset.index_select(0, byte))


@dataclass(frozen=True)
class EventWeights:
    """Fixed weights in event form: ``post``/``w`` (n, k_max) outgoing synapses per recurrent presynaptic
    neuron, padded with weight 0 onto neuron 0; ``w_in`` (n, n_in) dense input weights (duplicates summed)."""

    post: torch.Tensor
    w: torch.Tensor
    w_in: torch.Tensor

    @classmethod
    def build(cls, liquid: Liquid, weights: np.ndarray | None = None) -> EventWeights:
        """From the synapse lists; ``weights`` (n_syn,) overrides the initial ones."""
        n = liquid.n
        w_all = np.asarray(liquid.w0 if weights is None else weights, dtype=np.float32)
        rec = liquid.recurrent
        pre, post, w = liquid.pre[rec], liquid.post[rec], w_all[rec]
        order = np.argsort(pre, kind="stable")
        pre, post, w = pre[order], post[order], w[order]
        fan_out = np.bincount(pre, minlength=n)
        k_max = max(int(fan_out.max()) if fan_out.size else 0, 1)
        slot = np.arange(pre.size) - np.repeat(np.cumsum(fan_out) - fan_out, fan_out)
        post_pad = np.zeros((n, k_max), dtype=np.int64)
        w_pad = np.zeros((n, k_max), dtype=np.float32)
        post_pad[pre, slot] = post
        w_pad[pre, slot] = w
        w_in = np.zeros((n, liquid.n_in), dtype=np.float32)
        np.add.at(w_in, (liquid.post[~rec], liquid.pre[~rec] - n), w_all[~rec])
        return cls(torch.from_numpy(post_pad), torch.from_numpy(w_pad), torch.from_numpy(w_in))

    def to(self, device: torch.device) -> EventWeights:
        """The same weights on ``device``."""
        return EventWeights(self.post.to(device), self.w.to(device), self.w_in.to(device))


def run_event(
    ew: EventWeights,
    p_t: torch.Tensor,
    steps: int,
    gen: torch.Generator,
    params: F.LIFParams,
    raster: torch.Tensor | None,
) -> tuple[torch.Tensor, float]:
    """Simulate ``steps`` 1 ms steps from rest; p_t: (n_in, batch) per-ms input spike probabilities.

    Runs on the device of ``ew`` (:meth:`EventWeights.to`); ``p_t`` and ``gen`` stay on the CPU, where the
    input spikes are drawn, so the spikes do not depend on the device. Fills ``raster`` (steps, n, r) bool
    (on ``ew``'s device) for the first r samples when given. Returns the spike counts (n, batch) float32 on
    ``ew``'s device and the number of input spikes drawn. The random stream is consumed exactly as the
    CSR backend does (one ``torch.rand(p_t.shape)`` per step).
    """
    n, batch = ew.w_in.shape[0], p_t.shape[1]
    dev = ew.w_in.device
    nb = n * batch
    i_syn = torch.zeros(n, batch, device=dev)
    v = torch.zeros(n, batch, device=dev)
    syn = torch.zeros(n, batch, device=dev)
    cross = Crossings(nb, dev)
    post_scaled = ew.post * batch  # flat (post, sample) index = post * batch + sample
    last = torch.full((nb,), NEVER, dtype=torch.int32, device=dev)
    counts = torch.zeros(nb, device=dev)
    s_in = torch.zeros(p_t.shape, device=dev)
    u = torch.empty(p_t.shape)
    drawn = torch.empty(p_t.shape, dtype=torch.bool)
    v_flat, syn_flat = v.view(-1), syn.view(-1)
    fired = torch.zeros(0, dtype=torch.long, device=dev)
    # lif_step: a spike at t0 sets refrac = t_ref, decremented after each later check, so a neuron may fire
    # again at t iff t - t0 >= t_ref + 1
    min_gap = params.t_ref + 1.0
    r = 0 if raster is None else raster.shape[2]
    n_in_spikes = 0.0
    inv_tau, k_v = 1.0 / params.tau_u, 1.0 - 1.0 / params.tau_v
    for t in range(steps):
        torch.mm(ew.w_in, s_in, out=syn)  # input spikes of t-1
        if fired.numel():  # liquid spikes of t-1: scatter their outgoing rows
            pre_n = torch.div(fired, batch, rounding_mode="floor")
            b = fired - pre_n * batch
            tgt = post_scaled.index_select(0, pre_n).add_(b[:, None]).view(-1)
            syn_flat.index_add_(0, tgt, ew.w.index_select(0, pre_n).view(-1))
        # lif_step kernels: i = (i + syn / tau_u) d_u; v = i + (1 - 1/tau_v) v
        i_syn.add_(syn, alpha=inv_tau).mul_(params.d_u)
        torch.add(i_syn, v, alpha=k_v, out=v)
        cand = cross.find(v_flat, params.v_th)
        if params.t_ref > 0 and cand.numel():
            cand = cand[(t - last.index_select(0, cand)) >= min_gap]
        fired = cand
        if fired.numel():
            v_flat.index_fill_(0, fired, params.v_reset)
            last.index_fill_(0, fired, t)
            counts.index_add_(0, fired, torch.ones(fired.numel(), device=dev))
            if r:
                nrn = torch.div(fired, batch, rounding_mode="floor")
                smp = fired - nrn * batch
                keep = smp < r
                assert raster is not None
                raster[t, nrn[keep], smp[keep]] = True
        torch.rand(p_t.shape, generator=gen, out=u)
        torch.lt(u, p_t, out=drawn)
        s_in.copy_(drawn)
        n_in_spikes += float(drawn.sum())
    return counts.view(n, batch), n_in_spikes
