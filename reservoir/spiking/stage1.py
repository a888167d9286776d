"""NALSM stage 1 (weight initialisation): one sample at a time, the loop of :mod:`.plastic`.

The compiled kernel of :mod:`reservoir.spiking.plastic_kernel` runs it when numba is installed; otherwise
(or with ``backend="numpy"``) the NumPy loop below does.

Stage 1 runs a batch of one, so every step is a few dozen operations on ~1000 floats and the cost is the
per-call overhead: NumPy's is a few times smaller than torch's. The arithmetic is
:func:`reservoir.spiking.plastic.run_plastic`'s, operation for operation and in float32, so the weights
are bit-identical to it (tested): torch's fused ``add(alpha=)`` (one rounding, an FMA) is reproduced by
computing in float64 (the products are exact there) and rounding once to float32, the scatter of the
synaptic current is ``np.add.at`` in the same index order as ``index_add_``, and the input uniforms come
from the same torch generator (one ``torch.rand`` call for many samples consumes it exactly as one call per
step does).
"""

from __future__ import annotations

import numpy as np
import torch

from reservoir.progress import note
from reservoir.spiking import functional as F
from reservoir.spiking import plastic_kernel
from reservoir.spiking.fast import NEVER
from reservoir.spiking.liquid import W_INPUT_BOUNDS
from reservoir.spiking.plastic import PlasticTables

F32 = np.float32
SAMPLES_PER_DRAW = 256  # samples whose input uniforms are drawn by one torch.rand call


def run_stage1(
    tab: PlasticTables,
    p: np.ndarray,
    steps: int,
    gen: torch.Generator,
    w_l: np.ndarray,
    w_i: np.ndarray,
    a0: float,
    *,
    eta: float,
    w_astro: float,
    b_astro: float,
    astro: bool,
    tau_astro: float,
    params: F.LIFParams,
    backend: str = "auto",
) -> float:
    """Present the rows of ``p`` (n_samples, n_in) one after the other, ``steps`` ms each, from rest.

    ``w_l``/``w_i`` (the flat blocks of :meth:`PlasticTables.to_padded` for a batch of one, as NumPy
    views) are updated in place and carried from sample to sample, as is A (starting at ``a0``); no decay.
    Returns the final A. backend: "numba" (the compiled loop of :mod:`reservoir.spiking.plastic_kernel`,
    bit-identical), "numpy" (this module's loop) or "auto" (numba when installed).
    """
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}")
    if backend == "numba" and not plastic_kernel.AVAILABLE:
        raise RuntimeError("backend 'numba' needs numba (the neuro extra: pip install 'asicrc[neuro]')")
    if backend != "numpy" and plastic_kernel.AVAILABLE:
        kt = plastic_kernel.kernel_tables(tab)
        a_arr = np.full(1, a0, dtype=F32)
        for first in range(0, p.shape[0], SAMPLES_PER_DRAW):
            k_draw = min(SAMPLES_PER_DRAW, p.shape[0] - first)
            note(f"stage 1: sample {first}/{p.shape[0]}")
            u = torch.rand((k_draw * steps, tab.n_in, 1), generator=gen).numpy()[:, :, 0]
            plastic_kernel.run_kernel(
                kt,
                u.reshape(k_draw, steps, tab.n_in) < p[first : first + k_draw, None, :],
                w_l.reshape(1, -1),
                w_i.reshape(1, -1),
                a_arr,
                carry=True,
                eta=eta,
                w_astro=w_astro,
                b_astro=b_astro,
                astro=astro,
                tau_astro=tau_astro,
                decay=1.0,
                params=params,
            )
        return float(a_arr[0])
    n, n_in = tab.n, tab.n_in
    na = n + n_in + 1
    liq, inp = tab.liq, tab.inp
    rows_l = w_l.reshape(n + 1, liq.k)
    rows_i = w_i.reshape(n_in + 1, inp.k)
    in_pos_l, in_pre_l = tab.in_pos_l.numpy(), tab.in_pre_l.numpy()
    in_inh_l, in_lo_l, in_hi_l = tab.in_inh_l.numpy(), tab.in_lo_l.numpy(), tab.in_hi_l.numpy()
    in_pos_i, in_pre_i = tab.in_pos_i.numpy(), tab.in_pre_i.numpy()
    post_l, post_i = liq.post.numpy(), inp.post.numpy()
    inh, lo, hi = tab.inh.numpy(), tab.lo.numpy(), tab.hi.numpy()
    lo_i, hi_i = F32(W_INPUT_BOUNDS[0]), F32(W_INPUT_BOUNDS[1])
    eta32, tenth, d_x = F32(eta), F32(F.STDP_A), F32(np.exp(-F.DT_MS / F.STDP_TAU_MS))
    wa32, ba32, tau32 = F32(w_astro), F32(b_astro), F32(tau_astro)
    alpha = F32(1.0 / params.tau_u)
    d_u, k_v = F32(params.d_u), np.float64(F32(1.0 - 1.0 / params.tau_v))
    v_th, v_reset, min_gap = F32(params.v_th), F32(params.v_reset), params.t_ref + 1.0
    a = F32(a0)
    syn = np.zeros(na, dtype=F32)
    i_syn = np.zeros(n, dtype=F32)
    v = np.zeros(n, dtype=F32)
    v64 = np.zeros(n, dtype=np.float64)  # the fused membrane update, computed in float64 (work buffer)
    above = np.zeros(n, dtype=np.bool_)
    x = np.zeros(na, dtype=F32)
    last = np.zeros(n, dtype=np.int64)
    n_samples = p.shape[0]
    for first in range(0, n_samples, SAMPLES_PER_DRAW):
        k_draw = min(SAMPLES_PER_DRAW, n_samples - first)
        note(f"stage 1: sample {first}/{n_samples}")
        u = torch.rand((k_draw * steps, n_in, 1), generator=gen).numpy()[:, :, 0]
        spikes = u.reshape(k_draw, steps, n_in) < p[first : first + k_draw, None, :]
        for k in range(k_draw):
            t_in, j_all = spikes[k].nonzero()  # input spikes of this sample, by step
            bounds = np.searchsorted(t_in, np.arange(steps + 1)).tolist()
            i_syn.fill(0.0)
            v.fill(0.0)
            x.fill(0.0)
            last.fill(NEVER)
            tgt = np.zeros(0, dtype=np.int64)
            cur = np.zeros(0, dtype=F32)
            for t in range(steps):
                syn.fill(0.0)
                np.add.at(syn, tgt, cur)
                if alpha == 1.0:  # fma(syn, 1, i) rounds once, like the plain sum
                    i_syn += syn[:n]
                else:
                    i_syn[:] = (i_syn.astype(np.float64) + np.float64(alpha) * syn[:n]).astype(F32)
                i_syn *= d_u
                np.multiply(v, k_v, out=v64)  # float64: k_v v + i_syn rounded once, like torch's fma
                v64 += i_syn
                v[:] = v64
                np.greater_equal(v, v_th, out=above)
                fired = above.nonzero()[0]
                if params.t_ref > 0 and fired.size:
                    fired = fired[(t - last[fired]) >= min_gap]
                j_in = j_all[bounds[t] : bounds[t + 1]]
                neg = -a if astro else -eta32
                if fired.size:
                    v[fired] = v_reset
                    last[fired] = t
                    # causal: incoming synapses of the neurons that fired, x_pre of t - 1 (clipped below)
                    pos_l, pos_i = in_pos_l[fired], in_pos_i[fired]
                    w_l[pos_l] = w_l[pos_l] + np.where(in_inh_l[fired], neg, eta32) * x[in_pre_l[fired]]
                    w_i[pos_i] = w_i[pos_i] + x[in_pre_i[fired]] * eta32
                    # acausal: outgoing rows, x_post of t - 1, clipped; next step's current
                    rate = np.where(inh[fired], eta32, neg)[:, None]
                    tgt_l = post_l[fired]
                    cur_l = np.minimum(np.maximum(rows_l[fired] + x[tgt_l] * rate, lo[fired]), hi[fired])
                    rows_l[fired] = cur_l
                else:
                    tgt_l, cur_l = post_l[:0], rows_l[:0]
                tgt_i = post_i[j_in]
                cur_i = np.minimum(np.maximum(rows_i[j_in] + x[tgt_i] * neg, lo_i), hi_i)
                rows_i[j_in] = cur_i
                if fired.size:  # clip the causal changes once, after the acausal ones (as the reference)
                    w_l[pos_l] = np.minimum(np.maximum(w_l[pos_l], in_lo_l[fired]), in_hi_l[fired])
                    w_i[pos_i] = np.minimum(np.maximum(w_i[pos_i], lo_i), hi_i)
                tgt = np.concatenate([tgt_l.ravel(), tgt_i.ravel()])
                cur = np.concatenate([cur_l.ravel(), cur_i.ravel()])
                x[fired] += tenth
                x[n + j_in] += tenth
                x *= d_x
                if astro:
                    a = a + (wa32 * (F32(fired.size) - F32(j_in.size)) + ba32 - a) / tau32
    return float(a)
