"""Compiled (numba) plastic liquid: the loop of :mod:`reservoir.spiking.plastic` one sample at a time.

Each sample owns its weights and its A; the rates eta, w_astro and b_astro decay identically in every
sample. So the kernel runs sample after sample (that sample's weights, ~100 kB at N = 1000, stay in cache)
and step after step, touching only the synapses of the neurons that spiked, with the operations of
:func:`reservoir.spiking.plastic.run_plastic` in the same order and in float32 (no ``fastmath``, so no
contraction of ``a * b + c`` into an FMA): the weights, spikes and A are bit-identical to the torch loop
(tested). Torch's fused ``add(alpha=)`` is an FMA; as in :mod:`reservoir.spiking.stage1` it is computed in
float64 (the float32 products are exact there) and rounded once to float32.

Two modes: ``carry=False`` (stage 2: sample b starts from its own row of ``w_l``/``w_i``/``a``) and
``carry=True`` (stage 1: one row of weights and one A carried from sample to sample). The input spikes are
drawn by the caller with torch's generator (same stream as the torch path) and handed over as a
``(samples, steps, n_in)`` bool array.

numba is optional (the ``neuro`` extra): :data:`AVAILABLE` says whether it imported; without it the callers
keep the torch/NumPy loops. Compilation (~2-8 s on first use here) is cached on disk when numba finds a
writable cache directory (next to this file, else the user's cache; ``NUMBA_CACHE_DIR`` overrides).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from reservoir.spiking import functional as F
from reservoir.spiking.fast import NEVER
from reservoir.spiking.liquid import W_INPUT_BOUNDS

if TYPE_CHECKING:  # plastic imports this module when it runs the kernel
    from reservoir.spiking.plastic import PlasticTables

numba: Any
try:
    import numba
except ImportError:  # pragma: no cover - the neuro extra installs numba
    numba = None

AVAILABLE = numba is not None
F32 = np.float32


def _loop(  # one flat kernel: its arguments are the tables and constants
    in_pos_l: Any,  # (n, kl) int32 incoming liquid synapses: block positions
    in_pre_l: Any,  # (n, kl) int32 their presynaptic neuron
    in_inh_l: Any,  # (n, kl) bool inhibitory
    in_lo_l: Any,  # (n, kl) f32 bounds
    in_hi_l: Any,
    in_fan_l: Any,  # (n,) int64 real entries per row
    in_pos_i: Any,  # (n, ki) int32 incoming input synapses
    in_pre_i: Any,
    in_fan_i: Any,
    post_l: Any,  # (n, k) int32 outgoing liquid synapses: postsynaptic neuron
    fan_l: Any,  # (n,) int64
    post_i: Any,  # (n_in, k_i) outgoing input synapses
    fan_i: Any,  # (n_in,)
    inh: Any,  # (n,) bool inhibitory neuron
    lo: Any,  # (n,) f32 bounds of its outgoing synapses
    hi: Any,
    spikes: Any,  # (samples, steps, n_in) bool input spikes
    w_l: Any,  # (rows, (n + 1) * k) f32, rows = samples, or 1 when carry
    w_i: Any,  # (rows, (n_in + 1) * k_i) f32
    a_all: Any,  # (rows,) f32
    counts: Any,  # (samples, n) f32, zeroed by the caller
    raster: Any,  # (steps, n, r) bool
    carry: bool,
    astro: bool,
    eta0: float,  # float64 rates, decayed in float64 and rounded to float32 where used (as in torch)
    wa0: float,
    ba0: float,
    decay: float,
    decay32: Any,  # f32 constants
    tau_astro: Any,
    tenth: Any,
    d_x: Any,
    alpha: Any,
    d_u: Any,
    k_v: float,  # float64 of the float32 alpha of torch's fused membrane update
    v_th: Any,
    v_reset: Any,
    min_gap: float,
    lo_i: Any,
    hi_i: Any,
) -> None:
    n_samples, steps, n_in = spikes.shape
    n = post_l.shape[0]
    k_l, k_i = post_l.shape[1], post_i.shape[1]
    r = raster.shape[2]
    na = n + n_in
    syn = np.zeros(n, dtype=np.float32)
    i_syn = np.zeros(n, dtype=np.float32)
    v = np.zeros(n, dtype=np.float32)
    x = np.zeros(na + 1, dtype=np.float32)  # [liquid, inputs, zero]
    last = np.zeros(n, dtype=np.int64)
    fired = np.zeros(n, dtype=np.int64)
    j_in = np.zeros(n_in, dtype=np.int64)
    for s in range(n_samples):
        row = 0 if carry else s
        wl = w_l[row]
        wi = w_i[row]
        a = a_all[row]
        eta, wa, ba = eta0, wa0, ba0
        syn[:] = 0.0
        i_syn[:] = 0.0
        v[:] = 0.0
        x[:] = 0.0
        last[:] = NEVER
        for t in range(steps):
            # LIF (lif_step's kernels) on the current from the spikes of t - 1, which the acausal pass of
            # t - 1 summed into syn; threshold crossings, refractoriness as the last spike step
            n_f = 0
            for i in range(n):
                if alpha == 1.0:
                    cur = i_syn[i] + syn[i]
                else:
                    cur = np.float32(np.float64(i_syn[i]) + np.float64(alpha) * np.float64(syn[i]))
                syn[i] = 0.0
                cur = cur * d_u
                i_syn[i] = cur
                vi = np.float32(np.float64(v[i]) * k_v + np.float64(cur))
                if vi >= v_th and (t - last[i]) >= min_gap:
                    vi = v_reset
                    last[i] = t
                    fired[n_f] = i
                    n_f += 1
                    counts[s, i] += np.float32(1.0)
                    if s < r:
                        raster[t, i, s] = True
                v[i] = vi
            n_j = 0
            for j in range(n_in):
                if spikes[s, t, j]:
                    j_in[n_j] = j
                    n_j += 1
            eta32 = np.float32(eta)
            neg = -a if astro else -eta32
            # causal: incoming synapses of the neurons that fired get rate x_pre (traces of t - 1), clipped
            # at once unless their presynaptic neuron fired too: the acausal pass below adds its change and
            # clips the sum, as the torch loop's one clip after both (same bounds, by presynaptic class)
            for q in range(n_f):
                i = fired[q]
                for c in range(in_fan_l[i]):
                    pre = in_pre_l[i, c]
                    rate = neg if in_inh_l[i, c] else eta32
                    p = in_pos_l[i, c]
                    w = wl[p] + rate * x[pre]
                    if last[pre] != t:
                        w = min(max(w, in_lo_l[i, c]), in_hi_l[i, c])
                    wl[p] = w
                for c in range(in_fan_i[i]):
                    pre = in_pre_i[i, c]
                    p = in_pos_i[i, c]
                    w = wi[p] + x[pre] * eta32
                    if not spikes[s, t, pre - n]:
                        w = min(max(w, lo_i), hi_i)
                    wi[p] = w
            # acausal: outgoing rows of the liquid and input neurons that fired get rate x_post, clipped;
            # these rows are final for this step, so they are also summed into next step's current here
            # (liquid rows, then input rows, in the torch loop's scatter order)
            for q in range(n_f):
                i = fired[q]
                rate = eta32 if inh[i] else neg
                base = i * k_l
                for c in range(fan_l[i]):
                    tgt = post_l[i, c]
                    w = min(max(wl[base + c] + x[tgt] * rate, lo[i]), hi[i])
                    wl[base + c] = w
                    syn[tgt] += w
            for q in range(n_j):
                j = j_in[q]
                base = j * k_i
                for c in range(fan_i[j]):
                    tgt = post_i[j, c]
                    w = min(max(wi[base + c] + x[tgt] * neg, lo_i), hi_i)
                    wi[base + c] = w
                    syn[tgt] += w
            # traces: x <- d (x + a S)
            for q in range(n_f):
                x[fired[q]] += tenth
            for q in range(n_j):
                x[n + j_in[q]] += tenth
            for m in range(na):
                x[m] = x[m] * d_x
            if astro:
                diff = np.float32(n_f) - np.float32(n_j)
                a = a + (np.float32(wa) * diff + np.float32(ba) - a) / tau_astro
            if decay != 1.0:
                eta *= decay
                wa *= decay
                ba *= decay
                a = a * decay32
        a_all[row] = a


def _compile(fn: Any) -> Any:
    """``numba.njit`` without fastmath, cached on disk when numba finds a writable cache directory."""
    if numba is None:  # pragma: no cover
        return None
    try:
        return numba.njit(cache=True, fastmath=False)(fn)
    except RuntimeError:  # no writable cache location: compile per process
        return numba.njit(cache=False, fastmath=False)(fn)


_kernel = _compile(_loop)


def _fan(table: np.ndarray, pad: int) -> np.ndarray:
    """Real entries per row of a padded table (padding, value ``pad``, sits at the end of each row)."""
    out: np.ndarray = (table != pad).sum(axis=1).astype(np.int64)
    return out


@dataclass(frozen=True)
class KernelTables:
    """The NumPy arrays of a :class:`PlasticTables` plus each padded row's fan, as the kernel takes them."""

    arrays: tuple[np.ndarray, ...]

    @classmethod
    def build(cls, tab: PlasticTables) -> KernelTables:
        zero = tab.n + tab.n_in
        if max(tab.liq.block, tab.inp.block, zero) >= 2**31:
            raise ValueError("liquid too large for the kernel's int32 tables")
        i32 = np.int32  # index tables in int32: half the memory traffic of int64 (measured -17 % on MNIST)
        in_pre_l, in_pre_i = tab.in_pre_l.numpy().astype(i32), tab.in_pre_i.numpy().astype(i32)
        post_l, post_i = tab.liq.post.numpy().astype(i32), tab.inp.post.numpy().astype(i32)
        arrays = (
            tab.in_pos_l.numpy().astype(i32),
            in_pre_l,
            tab.in_inh_l.numpy(),
            tab.in_lo_l.numpy(),
            tab.in_hi_l.numpy(),
            _fan(in_pre_l, zero),
            tab.in_pos_i.numpy().astype(i32),
            in_pre_i,
            _fan(in_pre_i, zero),
            post_l,
            _fan(post_l, zero),
            post_i,
            _fan(post_i, zero),
            tab.inh.numpy(),
            np.ascontiguousarray(tab.lo.numpy()[:, 0]),
            np.ascontiguousarray(tab.hi.numpy()[:, 0]),
        )
        return cls(arrays)


def kernel_tables(tab: PlasticTables) -> KernelTables:
    """:meth:`KernelTables.build` of ``tab``, built once and kept on it."""
    kt = tab.__dict__.get("_kernel_tables")
    if not isinstance(kt, KernelTables):
        kt = KernelTables.build(tab)
        object.__setattr__(tab, "_kernel_tables", kt)
    return kt


def run_kernel(
    kt: KernelTables,
    spikes: np.ndarray,
    w_l: np.ndarray,
    w_i: np.ndarray,
    a: np.ndarray,
    *,
    carry: bool,
    eta: float,
    w_astro: float,
    b_astro: float,
    astro: bool,
    tau_astro: float,
    decay: float,
    params: F.LIFParams,
    raster: np.ndarray | None = None,
) -> np.ndarray:
    """Run the samples of ``spikes`` (samples, steps, n_in) bool; returns the spike counts (samples, n).

    ``w_l``/``w_i`` (rows, block) float32 and ``a`` (rows,) float32 are updated in place; rows = samples
    (each sample from its own row) or 1 with ``carry`` (stage 1: carried from sample to sample). eta,
    w_astro, b_astro restart at the given values for every sample and decay by ``decay`` per ms (as A
    does). ``raster`` (steps, n, r) bool is filled for the first r samples.
    """
    if _kernel is None:
        raise RuntimeError("numba is not installed (pip install numba, or the neuro extra)")
    n = kt.arrays[9].shape[0]
    counts = np.zeros((spikes.shape[0], n), dtype=F32)
    ras = np.zeros((spikes.shape[1], n, 0), dtype=np.bool_) if raster is None else raster
    _kernel(
        *kt.arrays,
        np.ascontiguousarray(spikes, dtype=np.bool_),
        w_l,
        w_i,
        a,
        counts,
        ras,
        carry,
        astro,
        float(eta),
        float(w_astro),
        float(b_astro),
        float(decay),
        F32(decay),
        F32(tau_astro),
        F32(F.STDP_A),
        F32(np.exp(-F.DT_MS / F.STDP_TAU_MS)),
        F32(1.0 / params.tau_u),
        F32(params.d_u),
        float(F32(1.0 - 1.0 / params.tau_v)),
        F32(params.v_th),
        F32(params.v_reset),
        float(params.t_ref + 1.0),
        F32(W_INPUT_BOUNDS[0]),
        F32(W_INPUT_BOUNDS[1]),
    )
    return counts


def compile_seconds() -> float:
    """Seconds to compile the kernel from scratch (no disk cache) for the argument types used so far
    in this process (run the kernel once first); 0.0 if it has not run. For benchmarks."""
    if numba is None or _kernel is None or not _kernel.signatures:
        return 0.0
    fresh = numba.njit(cache=False, fastmath=False)(_loop)
    t0 = time.perf_counter()
    for sig in _kernel.signatures:
        fresh.compile(sig)
    return time.perf_counter() - t0
