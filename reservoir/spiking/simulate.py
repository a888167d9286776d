"""Batched liquid simulation (fixed or plastic weights), input encoding and the branching factor.

Layout is neuron-major: states are ``(n, batch)`` float32 tensors. Fixed weights run event-driven by
default (:mod:`reservoir.spiking.fast`); the sparse CSR product (measured ~7x faster than a dense matmul at
N = 1000, batch 500, and ~60x at N = 8000 on 2 cores) is the reference backend
(benchmarks/bench_spiking.py). Plastic runs keep one weight per synapse and sample, ``(n_syn, batch)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from reservoir.progress import note
from reservoir.spiking import functional as F
from reservoir.spiking.fast import EventWeights, run_event
from reservoir.spiking.liquid import SYN_INH, Liquid, csr_weights, dense_weights

PRESENTATION_MS = 250  # per-sample presentation (science.md)
INIT_SAMPLE_MS = 20  # per-sample duration of the NALSM weight initialisation stage (science.md)
PLASTICITY_DECAY = 0.99  # per-ms decay of eta, w_astro, b_astro and A during a presentation (science.md)
# Branching-factor window (NALSM compute_branching_factor.py: buffer 25 ms, dt 4 ms).
BF_BUFFER_MS = 25
BF_DT_MS = 4


def encoding_scale(x: np.ndarray) -> float:
    """Dataset maximum of the per-sample normalised intensities ``x / sum(x)`` (x non-negative)."""
    return float(np.max(_per_sample(x))) if x.size else 1.0


def _per_sample(x: np.ndarray) -> np.ndarray:
    s = x.sum(axis=1, keepdims=True)
    out: np.ndarray = np.divide(x, s, out=np.zeros_like(x, dtype=np.float64), where=s > 0)
    return out


def spike_probabilities(x: np.ndarray, scale: float) -> np.ndarray:
    """Per-ms Bernoulli spike probability: ``(x / sum x) / scale``, clipped to [0, 1] (float32)."""
    p = _per_sample(np.clip(np.asarray(x, dtype=np.float64), 0.0, None)) / max(scale, 1e-12)
    return np.clip(p, 0.0, 1.0).astype(np.float32)


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


def _bernoulli(p_t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(p_t.shape, generator=gen) < p_t).to(torch.float32)


def simulate_fixed(
    liquid: Liquid,
    p_in: torch.Tensor,
    steps: int,
    gen: torch.Generator,
    *,
    weights: torch.Tensor | None = None,
    params: F.LIFParams = F.DEFAULT_LIF,
    record: int = 0,
    backend: str = "event",
    threads: int | None = 1,
) -> SimResult:
    """Run a batch through a fixed-weight liquid.

    p_in: (batch, n_in) per-ms input spike probabilities; steps: duration in ms; weights: per-synapse weights
    (n_syn,) (default: the initial ones); backend: "event" (scatter the spiking neurons' synapses, fastest;
    see :mod:`reservoir.spiking.fast`), "csr" (sparse product, the reference) or "dense"; record: keep the
    spike raster of the first ``record`` samples; threads: torch intra-op threads during the run (restored
    after; None = leave torch's setting). One thread is the default because the per-step ops are small:
    two threads measured 2-12x slower on the shared 2-core host (docs/spiking.md).
    """
    if threads is None:
        return _simulate_fixed(liquid, p_in, steps, gen, weights, params, record, backend)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _simulate_fixed(liquid, p_in, steps, gen, weights, params, record, backend)
    finally:
        torch.set_num_threads(before)


def _simulate_fixed(
    liquid: Liquid,
    p_in: torch.Tensor,
    steps: int,
    gen: torch.Generator,
    weights: torch.Tensor | None,
    params: F.LIFParams,
    record: int,
    backend: str,
) -> SimResult:
    n = liquid.n
    w_np = None if weights is None else weights.detach().cpu().numpy().astype(np.float32)
    if backend == "event":
        with torch.no_grad():
            batch = p_in.shape[0]
            raster = torch.zeros((steps, n, min(record, batch)), dtype=torch.bool) if record > 0 else None
            p_t = p_in.T.contiguous()
            counts, n_in_spikes = run_event(EventWeights.build(liquid, w_np), p_t, steps, gen, params, raster)
        return SimResult(counts=counts.T.contiguous(), raster=raster, input_spikes=n_in_spikes)
    with torch.no_grad():
        if backend == "csr":
            w_rec = csr_weights(liquid, w_np, "recurrent")
            w_inp = csr_weights(liquid, w_np, "input")
        elif backend == "dense":
            wt = dense_weights(liquid, w_np).T.contiguous()
            w_rec, w_inp = wt[:, :n].contiguous(), wt[:, n:].contiguous()
        else:
            raise ValueError(f"backend must be 'event', 'csr' or 'dense', got {backend!r}")
        batch = p_in.shape[0]
        p_t = p_in.T.contiguous()
        state = F.lif_init((n, batch))
        s_in_prev = torch.zeros((liquid.n_in, batch))
        counts = torch.zeros((n, batch))
        raster = torch.zeros((steps, n, min(record, batch)), dtype=torch.bool) if record > 0 else None
        n_in_spikes = 0.0
        for t in range(steps):
            syn = w_rec @ state.s + w_inp @ s_in_prev
            state = F.lif_step_(state, syn, params)  # in place on this function's own state
            counts += state.s
            if raster is not None:
                raster[t] = state.s[:, : raster.shape[2]] > 0
            s_in_prev = _bernoulli(p_t, gen)
            n_in_spikes += float(s_in_prev.sum())
    return SimResult(counts=counts.T.contiguous(), raster=raster, input_spikes=n_in_spikes)


class _SynapseIndex:
    """Synapse ids grouped by presynaptic and by postsynaptic neuron (CSR-style), for event-driven updates."""

    def __init__(self, liquid: Liquid) -> None:
        n_all = liquid.n + liquid.n_in
        self.pre = torch.from_numpy(liquid.pre)
        self.post = torch.from_numpy(liquid.post)
        self.by_pre = torch.from_numpy(np.argsort(liquid.pre, kind="stable"))
        self.by_post = torch.from_numpy(np.argsort(liquid.post, kind="stable"))
        self.ptr_pre = torch.from_numpy(
            np.concatenate([[0], np.cumsum(np.bincount(liquid.pre, minlength=n_all))])
        )
        self.ptr_post = torch.from_numpy(
            np.concatenate([[0], np.cumsum(np.bincount(liquid.post, minlength=n_all))])
        )

    @staticmethod
    def expand(
        ptr: torch.Tensor, order: torch.Tensor, nodes: torch.Tensor, samples: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All (synapse, sample) pairs attached to the spiking (node, sample) pairs."""
        starts = ptr.index_select(0, nodes)
        counts = ptr.index_select(0, nodes + 1) - starts
        total = int(counts.sum())
        rep = torch.repeat_interleave(torch.arange(nodes.numel()), counts, output_size=total)
        # position inside each node's synapse range: global position minus the range's start in the output
        offs = torch.arange(total) - (torch.cumsum(counts, 0) - counts).index_select(0, rep)
        return order.index_select(0, starts.index_select(0, rep) + offs), samples.index_select(0, rep)


def simulate_plastic(
    liquid: Liquid,
    p_in: torch.Tensor,
    steps: int,
    gen: torch.Generator,
    plasticity: Plasticity,
    *,
    w_start: torch.Tensor,
    a_start: torch.Tensor | None = None,
    decay: float = PLASTICITY_DECAY,
    params: F.LIFParams = F.DEFAULT_LIF,
    record: int = 0,
    method: str = "event",
) -> SimResult:
    """Run a batch with STDP (+ astrocyte); each sample has its own copy of the weights.

    w_start: (n_syn,) or (n_syn, batch) starting weights; a_start: (batch,) starting A (default a0);
    record: keep the spike raster of the first ``record`` samples;
    decay: per-ms multiplier of eta, w_astro, b_astro and A (1.0 = no decay, the initialisation stage);
    method: "event" touches only synapses of neurons that spiked (fast), "dense" applies :func:`F.stdp_dw`
    to every synapse (the reference; both give identical results up to float rounding).

    Step t: the current from spikes of t-1 drives the LIF step; then STDP uses the traces of t-1 with the
    spikes of t (causal pairs only), the traces and the astrocyte advance, and the rates decay.
    """
    if method not in ("event", "dense"):
        raise ValueError(f"method must be 'event' or 'dense', got {method!r}")
    n, n_in = liquid.n, liquid.n_in
    batch = p_in.shape[0]
    idx = _SynapseIndex(liquid)
    inh = torch.from_numpy(liquid.syn_class == SYN_INH)
    lo = torch.from_numpy(liquid.lower_bounds())
    hi = torch.from_numpy(liquid.upper_bounds())
    with torch.no_grad():
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
        # (synapse, sample) pairs whose presynaptic neuron spiked in the previous step
        syn_prev = torch.zeros(0, dtype=torch.long)
        b_prev = torch.zeros(0, dtype=torch.long)
        for t in range(steps):
            if method == "dense":
                syn = torch.zeros((n, batch)).index_add_(0, idx.post, w * s_all[idx.pre])
            else:
                flat_prev = syn_prev * batch + b_prev
                target = idx.post.index_select(0, syn_prev) * batch + b_prev
                syn = torch.zeros(n * batch).index_add_(0, target, w.view(-1).index_select(0, flat_prev))
                syn = syn.view(n, batch)
            state = F.lif_step(state, syn, 0.0, params)
            s_in = _bernoulli(p_t, gen)
            n_in_spikes += float(s_in.sum())
            s_new = torch.cat([state.s, s_in])
            dep: torch.Tensor | float = a if plasticity.astro else eta
            if method == "dense":
                dep_b = dep[None, :] if isinstance(dep, torch.Tensor) else dep
                dw = F.stdp_dw(
                    x_all[idx.pre], s_new[idx.pre], x_all[idx.post], s_new[idx.post], inh[:, None], eta, dep_b
                )
                w = torch.clamp(w + dw, lo[:, None], hi[:, None])
            else:
                dep_t = dep if isinstance(dep, torch.Tensor) else torch.full((batch,), dep)
                post_n, post_b = torch.nonzero(state.s, as_tuple=True)
                syn_c, b_c = idx.expand(idx.ptr_post, idx.by_post, post_n, post_b)
                pre_n, pre_b = torch.nonzero(s_new, as_tuple=True)
                syn_prev, b_prev = idx.expand(idx.ptr_pre, idx.by_pre, pre_n, pre_b)
                xf = x_all.view(-1)
                # causal: x_pre at the post spike; potentiates (exc/input pre) or deepens (inh pre, rate A)
                x_c = xf.index_select(0, idx.pre.index_select(0, syn_c) * batch + b_c)
                rate_c = torch.where(inh.index_select(0, syn_c), -dep_t.index_select(0, b_c), eta)
                # acausal: x_post at the pre spike; depresses (rate A) or weakens inhibition (rate eta)
                x_a = xf.index_select(0, idx.post.index_select(0, syn_prev) * batch + b_prev)
                rate_a = torch.where(inh.index_select(0, syn_prev), eta, -dep_t.index_select(0, b_prev))
                flat = torch.cat([syn_c * batch + b_c, syn_prev * batch + b_prev])
                syn_ids = torch.cat([syn_c, syn_prev])
                wf = w.view(-1)
                wf.index_add_(0, flat, torch.cat([rate_c * x_c, rate_a * x_a]))
                low, high = lo.index_select(0, syn_ids), hi.index_select(0, syn_ids)
                clipped = torch.minimum(torch.maximum(wf.index_select(0, flat), low), high)
                wf.index_copy_(0, flat, clipped)
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


def initialise_weights(
    liquid: Liquid,
    p_samples: torch.Tensor,
    gen: torch.Generator,
    plasticity: Plasticity,
    *,
    steps_per_sample: int = INIT_SAMPLE_MS,
    params: F.LIFParams = F.DEFAULT_LIF,
) -> torch.Tensor:
    """NALSM stage 1: present samples one at a time (``steps_per_sample`` ms each), no decay, weights and A
    carried from sample to sample (neuron state restarts). Returns the initialised weights (n_syn,)."""
    w = torch.from_numpy(liquid.w0.copy())
    a: torch.Tensor | None = None
    n = p_samples.shape[0]
    for k in range(n):
        if k % 10 == 0:
            note(f"stage 1: sample {k}/{n}")
        res = simulate_plastic(
            liquid,
            p_samples[k : k + 1],
            steps_per_sample,
            gen,
            plasticity,
            w_start=w,
            a_start=a,
            decay=1.0,
            params=params,
        )
        assert res.weights is not None
        w, a = res.weights[:, 0].contiguous(), res.astro
    return w


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
