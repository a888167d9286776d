"""Batched liquid simulation (fixed or plastic weights) and input encoding.

Layout is neuron-major: states are ``(n, batch)`` float32 tensors. Fixed weights run event-driven by
default (:mod:`reservoir.spiking.fast`); the sparse CSR product (measured ~7x faster than a dense matmul at
N = 1000, batch 500, and ~60x at N = 8000 on 2 cores) is the reference backend
(benchmarks/bench_spiking.py). Plastic runs keep one weight per synapse and sample, ``(n_syn, batch)``.
"""

from __future__ import annotations

import numpy as np
import torch

from reservoir.spiking import functional as F
from reservoir.spiking.branching import branching_factor as branching_factor  # re-exported
from reservoir.spiking.device import default_device, on_device
from reservoir.spiking.fast import EventWeights, run_event
from reservoir.spiking.liquid import Liquid, csr_weights, dense_weights
from reservoir.spiking.plastic import SUB_BATCH, PlasticRates, PlasticTables, draw_input_spikes, run_plastic
from reservoir.spiking.plastic_reference import plastic_dense
from reservoir.spiking.sim_types import Plasticity as Plasticity  # re-exported
from reservoir.spiking.sim_types import SimResult as SimResult  # re-exported
from reservoir.spiking.sim_types import bernoulli
from reservoir.spiking.stage1 import run_stage1

PRESENTATION_MS = 250  # per-sample presentation (docs/methods.md)
INIT_SAMPLE_MS = 20  # per-sample duration of the NALSM weight initialisation stage (docs/methods.md)
PLASTICITY_DECAY = 0.99  # per-ms decay of eta, w_astro, b_astro and A during a presentation (docs/methods.md)


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


def _device(device: torch.device | str | None) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


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
    device: torch.device | str | None = None,
) -> SimResult:
    """Run a batch through a fixed-weight liquid.

    p_in: (batch, n_in) per-ms input spike probabilities; steps: duration in ms; weights: per-synapse weights
    (n_syn,) (default: the initial ones); backend: "event" (scatter the spiking neurons' synapses, fastest;
    see :mod:`reservoir.spiking.fast`), "csr" (sparse product, the reference) or "dense"; record: keep the
    spike raster of the first ``record`` samples; threads: torch intra-op threads during the run (restored
    after; None = leave torch's setting). One thread is the default because the per-step ops are small:
    two threads measured 2-12x slower on the shared 2-core host (docs/spiking.md). device: where the
    liquid's tensors live (default CPU); the input spikes are drawn on the CPU from ``gen`` whatever the
    device, and the result is on the CPU.
    """
    dev = _device(device)
    if threads is None:
        return _simulate_fixed(liquid, p_in, steps, gen, weights, params, record, backend, dev)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _simulate_fixed(liquid, p_in, steps, gen, weights, params, record, backend, dev)
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
    dev: torch.device,
) -> SimResult:
    n = liquid.n
    w_np = None if weights is None else weights.detach().cpu().numpy().astype(np.float32)
    batch = p_in.shape[0]
    p_t = p_in.detach().cpu().T.contiguous()  # the input spikes are drawn on the CPU
    raster = torch.zeros((steps, n, min(record, batch)), dtype=torch.bool, device=dev) if record > 0 else None
    if backend == "event":
        with torch.no_grad():
            ew = EventWeights.build(liquid, w_np).to(dev)
            counts, n_in_spikes = run_event(ew, p_t, steps, gen, params, raster)
        return _fixed_result(counts, raster, n_in_spikes)
    with torch.no_grad():
        if backend == "csr":
            w_rec = csr_weights(liquid, w_np, "recurrent").to(dev)
            w_inp = csr_weights(liquid, w_np, "input").to(dev)
        elif backend == "dense":
            wt = dense_weights(liquid, w_np).T.contiguous()
            w_rec, w_inp = wt[:, :n].contiguous().to(dev), wt[:, n:].contiguous().to(dev)
        else:
            raise ValueError(f"backend must be 'event', 'csr' or 'dense', got {backend!r}")
        state = F.lif_init((n, batch), device=dev)
        s_in_prev = torch.zeros((liquid.n_in, batch), device=dev)
        counts = torch.zeros((n, batch), device=dev)
        n_in_spikes = 0.0
        for t in range(steps):
            syn = w_rec @ state.s + w_inp @ s_in_prev
            state = F.lif_step_(state, syn, params)  # in place on this function's own state
            counts += state.s
            if raster is not None:
                raster[t] = state.s[:, : raster.shape[2]] > 0
            drawn = bernoulli(p_t, gen)
            n_in_spikes += float(drawn.sum())
            s_in_prev = drawn.to(dev)
    return _fixed_result(counts, raster, n_in_spikes)


def _fixed_result(counts: torch.Tensor, raster: torch.Tensor | None, n_in_spikes: float) -> SimResult:
    """Counts (n, batch) and raster of any device -> a CPU :class:`SimResult` (counts (batch, n))."""
    return SimResult(
        counts=counts.T.contiguous().cpu(),
        raster=None if raster is None else raster.cpu(),
        input_spikes=n_in_spikes,
    )


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
    tables: PlasticTables | None = None,
    threads: int | None = 1,
    device: torch.device | str | None = None,
) -> SimResult:
    """Run a batch with STDP (+ astrocyte); each sample has its own copy of the weights.

    w_start: (n_syn,) or (n_syn, batch) starting weights; a_start: (batch,) starting A (default a0);
    record: keep the spike raster of the first ``record`` samples;
    decay: per-ms multiplier of eta, w_astro, b_astro and A (1.0 = no decay, the initialisation stage);
    method: "event" touches only synapses of neurons that spiked (:mod:`reservoir.spiking.plastic`; the
    numba kernel when installed, else torch; "numba"/"torch" force one, same results), "dense" applies
    :func:`F.stdp_dw` to every synapse (the reference; the two agree up to float32
    rounding, see the module); tables: prebuilt :class:`PlasticTables` of ``liquid`` (event method);
    threads: torch intra-op threads during the run (as :func:`simulate_fixed`); device: where the event
    method runs (default CPU; the dense reference runs on the CPU only), the input spikes being drawn on the
    CPU from ``gen`` whatever the device; the result is on the CPU.

    Step t: the current from spikes of t-1 drives the LIF step; then STDP uses the traces of t-1 with the
    spikes of t (causal pairs only), the traces and the astrocyte advance, and the rates decay.
    """
    if method not in ("event", "numba", "torch", "dense"):
        raise ValueError(f"method must be 'event', 'numba', 'torch' or 'dense', got {method!r}")
    dev = _device(device)
    if method == "dense" and dev.type != "cpu":
        raise ValueError("the dense reference of simulate_plastic runs on the CPU only")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            if method == "dense":
                return plastic_dense(
                    liquid, p_in, steps, gen, plasticity, w_start, a_start, decay, params, record
                )
            tab = on_device(PlasticTables.build(liquid) if tables is None else tables, dev)
            spikes = draw_input_spikes(p_in.detach().cpu().T.contiguous(), steps, gen)  # on the CPU
            n_in_spikes = float(spikes.sum())
            return _plastic_event(
                tab,
                spikes.to(dev),
                plasticity,
                w_start.to(dev),
                a_start,
                decay,
                params,
                record,
                n_in_spikes,
                backend="auto" if method == "event" else method,
            )
    finally:
        torch.set_num_threads(before)


def _plastic_event(
    tab: PlasticTables,
    spikes: torch.Tensor,
    plasticity: Plasticity,
    w_start: torch.Tensor,
    a_start: torch.Tensor | None,
    decay: float,
    params: F.LIFParams,
    record: int,
    n_in_spikes: float,
    backend: str = "auto",
) -> SimResult:
    """The event method of :func:`simulate_plastic` on the device of ``spikes`` (steps, n_in, batch);
    ``backend`` as :func:`reservoir.spiking.plastic.run_plastic`'s."""
    steps, _, batch = spikes.shape
    with default_device(spikes.device):
        a_all = (
            torch.full((batch,), plasticity.a0) if a_start is None else a_start.to(spikes.device, copy=True)
        )
        raster = torch.zeros((steps, tab.n, min(record, batch)), dtype=torch.bool) if record > 0 else None
        counts = torch.empty((batch, tab.n))
        weights = torch.empty((tab.n_syn, batch))
        for c0 in range(0, batch, SUB_BATCH):  # sub-batches keep their weights in cache
            c1 = min(batch, c0 + SUB_BATCH)
            w_l, w_i = tab.to_padded(w_start if w_start.dim() == 1 else w_start[:, c0:c1], c1 - c0)
            rates = PlasticRates(plasticity.eta_plus, plasticity.w_astro, plasticity.b_astro, a_all[c0:c1])
            counts[c0:c1] = run_plastic(
                tab,
                spikes[:, :, c0:c1],
                w_l,
                w_i,
                rates,
                astro=plasticity.astro,
                tau_astro=plasticity.tau_astro,
                decay=decay,
                params=params,
                raster=None if raster is None or c0 >= raster.shape[2] else raster[:, :, c0:c1],
                backend=backend,
            )
            weights[:, c0:c1] = tab.to_original(w_l, w_i, c1 - c0)
            a_all[c0:c1] = rates.a
    return SimResult(
        counts=counts.cpu(),
        raster=None if raster is None else raster.cpu(),
        weights=weights.cpu(),
        astro=a_all.cpu(),
        input_spikes=n_in_spikes,
    )


def initialise_weights(
    liquid: Liquid,
    p_samples: torch.Tensor,
    gen: torch.Generator,
    plasticity: Plasticity,
    *,
    steps_per_sample: int = INIT_SAMPLE_MS,
    params: F.LIFParams = F.DEFAULT_LIF,
    method: str = "event",
    threads: int | None = 1,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """NALSM stage 1: present samples one at a time (``steps_per_sample`` ms each), no decay, weights and A
    carried from sample to sample (neuron state restarts). Returns the initialised weights (n_syn,).

    method: "event" runs :mod:`reservoir.spiking.stage1` (tables built once, weights kept in its layout
    across samples; its numba kernel when installed, else its NumPy loop; "numba"/"numpy" force one,
    bit-identical), "torch" the same loop in torch
    (:func:`reservoir.spiking.plastic.run_plastic` per sample; bit-identical to "event"), "dense" the
    dense :func:`simulate_plastic` per sample (the reference). device: where the "torch" method runs (the
    other two run on the CPU only); the input spikes are drawn on the CPU whatever the device, and the
    weights are returned on the CPU.
    """
    if method not in ("event", "numba", "numpy", "torch", "dense"):
        raise ValueError(f"method must be 'event', 'numba', 'numpy', 'torch' or 'dense', got {method!r}")
    dev = _device(device)
    if method != "torch" and dev.type != "cpu":
        raise ValueError(f"stage 1 method {method!r} runs on the CPU only; use method='torch' on {dev}")
    if method == "dense":
        w = torch.from_numpy(liquid.w0.copy())
        a: torch.Tensor | None = None
        for k in range(p_samples.shape[0]):
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
                method="dense",
                threads=threads,
            )
            assert res.weights is not None
            w, a = res.weights[:, 0].contiguous(), res.astro
        return w
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            tab = PlasticTables.build(liquid)
            w_l, w_i = tab.to_padded(torch.from_numpy(liquid.w0), 1)
            if method != "torch":
                run_stage1(
                    tab,
                    p_samples.numpy().astype(np.float32, copy=False),
                    steps_per_sample,
                    gen,
                    w_l.numpy(),
                    w_i.numpy(),
                    plasticity.a0,
                    eta=plasticity.eta_plus,
                    w_astro=plasticity.w_astro,
                    b_astro=plasticity.b_astro,
                    astro=plasticity.astro,
                    tau_astro=plasticity.tau_astro,
                    params=params,
                    backend="auto" if method == "event" else method,
                )
                return tab.to_original(w_l, w_i, 1)[:, 0].contiguous()
            tab, w_l, w_i = on_device(tab, dev), w_l.to(dev), w_i.to(dev)
            rates = PlasticRates(0.0, 0.0, 0.0, torch.full((1,), plasticity.a0, device=dev))
            p_t = p_samples.detach().cpu().T.contiguous()  # (n_in, n_samples)
            for k in range(p_samples.shape[0]):
                rates.eta, rates.w_astro, rates.b_astro = (
                    plasticity.eta_plus,
                    plasticity.w_astro,
                    plasticity.b_astro,
                )
                spikes = draw_input_spikes(p_t[:, k : k + 1], steps_per_sample, gen).to(dev)  # CPU draw
                with default_device(dev):
                    run_plastic(
                        tab,
                        spikes,
                        w_l,
                        w_i,
                        rates,
                        astro=plasticity.astro,
                        tau_astro=plasticity.tau_astro,
                        decay=1.0,
                        params=params,
                        raster=None,
                        backend="torch",
                    )
            with default_device(dev):
                return tab.to_original(w_l, w_i, 1)[:, 0].contiguous().cpu()
    finally:
        torch.set_num_threads(before)
