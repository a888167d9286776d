"""Event-driven plastic liquid: the hot loop of :func:`reservoir.spiking.simulate.simulate_plastic`.

Each sample owns its weights. They live as ``(batch, n_syn + 1)`` float32 with the synapses sorted by
presynaptic neuron (a neuron's outgoing synapses are contiguous) and one dummy synapse at the end that always
holds 0 (padding in the per-neuron tables points to it). Per 1 ms step only the synapses of the (neuron,
sample) pairs that spiked are touched:

- current: the outgoing weights of last step's spikes (liquid and input) were already gathered and clipped
  by last step's STDP; they are scattered onto their targets with one ``index_add_``;
- LIF: the kernels of :func:`reservoir.spiking.functional.lif_step` in place, threshold crossings by a
  ``nonzero`` over the mask viewed as int64 words, refractoriness as each neuron's last spike step (as in
  :mod:`reservoir.spiking.fast`);
- STDP: the incoming synapses of the neurons that spiked get ``rate x_pre`` (causal), the outgoing synapses
  of the liquid and input neurons that spiked get ``rate x_post`` (acausal), from padded per-neuron tables;
  then the touched weights are clipped to their bounds, once per step as in the reference;
- traces: +0.1 at the spikes, then one dense multiply; the astrocyte and the rate decay on ``(batch,)``.

The arithmetic is the dense reference's, operation for operation, except where a synapse gets a causal and
an acausal change in the same step (its presynaptic and postsynaptic neurons spiked in the same ms): the
reference adds ``eta x_pre - A x_post`` at once, this loop adds the two terms one after the other; and the
summation order of the synaptic current differs. Both are float32 rounding (tested: same spikes, weights
within 1e-5); over thousands of steps a rounding difference can flip a spike near threshold, after which
the runs are statistically alike but not equal.
The input spikes of a whole presentation are drawn first (:func:`draw_input_spikes`: one ``torch.rand``
call per chunk of steps consumes the generator exactly as the reference's one call per step), so that
:func:`run_plastic` can run a batch as sub-batches of ``SUB_BATCH`` samples: the weights of a few dozen
samples stay in cache, which measured ~1.8x cheaper per sample than 250 at once (N = 1000).
When numba is installed, :func:`run_plastic` hands the same work to the compiled loop of
:mod:`reservoir.spiking.plastic_kernel` (bit-identical, ~7x cheaper); this loop is the fallback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from reservoir.spiking import functional as F
from reservoir.spiking.fast import NEVER, Crossings
from reservoir.spiking.liquid import SYN_INH, W_EXC_BOUNDS, W_INH_BOUNDS, W_INPUT_BOUNDS, Liquid

RAND_CHUNK_FLOATS = 1 << 22  # input uniforms drawn per torch.rand call (16 MB)
SUB_BATCH = 32  # samples simulated together (per-sample cost measured lowest at 32-64, N = 1000)


def draw_input_spikes(p_t: torch.Tensor, steps: int, gen: torch.Generator) -> torch.Tensor:
    """Bernoulli input spikes (steps, n_in, batch) bool for per-ms probabilities p_t (n_in, batch).

    Same stream as one ``torch.rand(p_t.shape)`` per step, drawn ``RAND_CHUNK_FLOATS`` at a time.
    """
    out = torch.empty((steps, *p_t.shape), dtype=torch.bool)
    chunk = max(1, min(steps, RAND_CHUNK_FLOATS // max(p_t.numel(), 1)))
    for t in range(0, steps, chunk):
        k = min(chunk, steps - t)
        torch.lt(torch.rand((k, *p_t.shape), generator=gen), p_t, out=out[t : t + k])
    return out


def _pad(rows: np.ndarray, fan: np.ndarray, values: np.ndarray, fill: float | int, dtype: type) -> np.ndarray:
    """(n_rows, max fan) table of ``values`` grouped by ``rows`` (sorted), padded with ``fill``."""
    k = max(int(fan.max()) if fan.size else 0, 1)
    out: np.ndarray = np.full((fan.size, k), fill, dtype=dtype)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(fan) - fan, fan)
    out[rows, slot] = values
    return out


@dataclass(frozen=True)
class Part:
    """The synapses of one presynaptic population (liquid or input) in padded row layout.

    One sample's block is ``(rows + 1, k)``: row j holds the outgoing synapses of presynaptic neuron j,
    padded to k, and the extra last row is a dummy that causal updates of padding land on. Padding holds
    weight 0 and stays 0 (its trace is the always-zero one). ``syn``: (n_syn_part,) original synapse ids,
    ``pos``: their position in the block; ``post`` (rows, k): postsynaptic neuron of every slot, as an
    index into ``[liquid, inputs, zero]`` (padding -> the zero column).
    """

    rows: int
    k: int
    syn: torch.Tensor
    pos: torch.Tensor
    post: torch.Tensor

    @property
    def block(self) -> int:
        """Floats per sample."""
        return (self.rows + 1) * self.k


@dataclass(frozen=True)
class PlasticTables:
    """Padded synapse tables of a liquid for :func:`run_plastic`.

    ``liq``/``inp``: the liquid -> liquid and input -> liquid synapses (:class:`Part`). Incoming synapses
    of every liquid neuron, for the causal updates: ``in_pos_l`` (n, kl) block positions in ``liq`` with
    ``in_pre_l`` trace index, ``in_inh_l``, ``in_lo_l``/``in_hi_l`` clip bounds; ``in_pos_i``/``in_pre_i``
    (n, ki) the same into ``inp`` (input synapses are never inhibitory; bounds W_INPUT_BOUNDS). Padding
    points to the dummy row and the zero trace. ``inh``/``lo``/``hi`` (n,)/(n, 1): class and bounds of
    the liquid presynaptic neurons.
    """

    n: int
    n_in: int
    n_syn: int
    liq: Part
    inp: Part
    in_pos_l: torch.Tensor
    in_pre_l: torch.Tensor
    in_inh_l: torch.Tensor
    in_lo_l: torch.Tensor
    in_hi_l: torch.Tensor
    in_pos_i: torch.Tensor
    in_pre_i: torch.Tensor
    inh: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    @classmethod
    def build(cls, liquid: Liquid) -> PlasticTables:
        """Tables of ``liquid`` (O(n_syn) numpy work, done once per liquid)."""
        n, n_in = liquid.n, liquid.n_in
        zero = n + n_in  # the always-zero trace
        rec = liquid.recurrent
        parts, slots = [], []
        for sel, rows, base in ((rec, n, 0), (~rec, n_in, n)):
            ids = np.flatnonzero(sel)
            ids = ids[np.argsort(liquid.pre[ids], kind="stable")]
            pre = liquid.pre[ids] - base
            fan = np.bincount(pre, minlength=rows)
            k = max(int(fan.max()) if fan.size else 0, 1)
            slot = np.arange(ids.size) - np.repeat(np.cumsum(fan) - fan, fan)
            pos = pre * k + slot
            post = liquid.post[ids]
            parts.append(
                Part(
                    rows=rows,
                    k=k,
                    syn=torch.from_numpy(ids),
                    pos=torch.from_numpy(pos),
                    post=torch.from_numpy(_pad(pre, fan, post, zero, np.int64)),
                )
            )
            slots.append((ids, pos, rows * k))  # rows * k: the dummy row's first slot
        liq, inp = parts
        tabs = []
        for ids, pos, dummy in slots:
            by_post = np.argsort(liquid.post[ids], kind="stable")
            post = liquid.post[ids][by_post]
            fan_in = np.bincount(post, minlength=n)
            tabs.append(
                (
                    _pad(post, fan_in, pos[by_post], dummy, np.int64),
                    _pad(post, fan_in, liquid.pre[ids][by_post], zero, np.int64),
                    ids[by_post],
                    post,
                    fan_in,
                )
            )
        (pos_l, pre_l, ids_l, post_l, fan_l), (pos_i, pre_i, _, _, _) = tabs
        cls_l = liquid.syn_class[ids_l]
        lo_syn, hi_syn = liquid.lower_bounds()[ids_l], liquid.upper_bounds()[ids_l]
        is_inh = ~liquid.is_exc
        bounds = np.array([W_EXC_BOUNDS, W_INH_BOUNDS], dtype=np.float32)[is_inh.astype(np.int64)]
        t = torch.from_numpy
        return cls(
            n=n,
            n_in=n_in,
            n_syn=liquid.n_syn,
            liq=liq,
            inp=inp,
            in_pos_l=t(pos_l),
            in_pre_l=t(pre_l),
            in_inh_l=t(_pad(post_l, fan_l, cls_l == SYN_INH, False, np.bool_)),
            in_lo_l=t(_pad(post_l, fan_l, lo_syn, 0.0, np.float32)),
            in_hi_l=t(_pad(post_l, fan_l, hi_syn, 0.0, np.float32)),
            in_pos_i=t(pos_i),
            in_pre_i=t(pre_i),
            inh=t(is_inh),
            lo=t(np.ascontiguousarray(bounds[:, 0:1])),
            hi=t(np.ascontiguousarray(bounds[:, 1:2])),
        )

    def to_padded(self, w: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_syn,) or (n_syn, batch) weights -> the flat per-sample blocks of ``liq`` and ``inp``."""
        w2 = w[:, None].expand(-1, batch) if w.dim() == 1 else w
        out = []
        for part in (self.liq, self.inp):
            blocks = torch.zeros((batch, part.block))
            blocks[:, part.pos] = w2.index_select(0, part.syn).T
            out.append(blocks.view(-1))
        return out[0], out[1]

    def to_original(self, w_l: torch.Tensor, w_i: torch.Tensor, batch: int) -> torch.Tensor:
        """The flat blocks -> (n_syn, batch) weights in the liquid's synapse order."""
        out = torch.empty((self.n_syn, batch))
        for part, w in ((self.liq, w_l), (self.inp, w_i)):
            out.index_copy_(0, part.syn, w.view(batch, part.block)[:, part.pos].T)
        return out


@dataclass
class PlasticRates:
    """STDP rate, astrocyte weight/bias and the per-sample depression rate A (decayed in place)."""

    eta: float
    w_astro: float
    b_astro: float
    a: torch.Tensor  # (batch,)


def run_plastic(
    tab: PlasticTables,
    spikes_in: torch.Tensor,
    w_l: torch.Tensor,
    w_i: torch.Tensor,
    rates: PlasticRates,
    *,
    astro: bool,
    tau_astro: float,
    decay: float,
    params: F.LIFParams,
    raster: torch.Tensor | None,
    backend: str = "auto",
) -> torch.Tensor:
    """Simulate from rest with plasticity, driven by ``spikes_in`` (steps, n_in, batch) bool.

    ``w_l``/``w_i`` (the flat blocks of :meth:`PlasticTables.to_padded`) and ``rates`` are updated in
    place. Fills ``raster`` (steps, n, r) for the first r samples. Returns the spike counts (batch, n)
    float32. backend: "numba" (the compiled loop of :mod:`reservoir.spiking.plastic_kernel`, same
    results), "torch" (this module's loop) or "auto" (numba when it is installed and the tensors are on
    the CPU).
    """
    if use_kernel(backend, w_l):
        return _run_kernel(tab, spikes_in, w_l, w_i, rates, astro, tau_astro, decay, params, raster)
    steps, n_in, batch = spikes_in.shape
    n = tab.n
    liq, inp = tab.liq, tab.inp
    # every per-neuron state is (batch, na): [liquid, inputs, zero] per sample, so that one flat index
    # b * na + neuron addresses the traces, the synaptic input and the LIF state alike; the input and zero
    # columns receive only +0.0 and stay at rest
    na = n + n_in + 1
    size = na * batch
    rows_l = w_l.view(batch * (n + 1), liq.k)
    rows_i = w_i.view(batch * (n_in + 1), inp.k)
    lo_i, hi_i = W_INPUT_BOUNDS
    x = torch.zeros(size)  # STDP traces
    syn = torch.zeros(size)
    i_syn = torch.zeros(size)
    v = torch.zeros(size)
    cross = Crossings(size)
    last = torch.full((size,), NEVER, dtype=torch.int32)
    counts = torch.zeros(size)
    ones = torch.ones(size)
    tenth = torch.full((size,), F.STDP_A)
    d_x = math.exp(-F.DT_MS / F.STDP_TAU_MS)
    min_gap = params.t_ref + 1.0
    inv_tau, k_v = 1.0 / params.tau_u, 1.0 - 1.0 / params.tau_v
    r = 0 if raster is None else raster.shape[2]
    tgt_l = tgt_i = torch.zeros(0, dtype=torch.long)
    cur_l = cur_i = torch.zeros(0)
    for t in range(steps):
        # current from the spikes of t - 1 (their outgoing weights after last step's STDP)
        syn.zero_()
        syn.scatter_add_(0, tgt_l, cur_l)  # sequential like index_add_, ~2x faster here
        syn.scatter_add_(0, tgt_i, cur_i)
        i_syn.add_(syn, alpha=inv_tau).mul_(params.d_u)
        torch.add(i_syn, v, alpha=k_v, out=v)
        fired = cross.find(v, params.v_th)
        if params.v_th <= 0.0 and fired.numel():  # resting input/zero columns cross such a threshold
            fired = fired[fired.remainder(na) < n]
        if params.t_ref > 0 and fired.numel():
            fired = fired[(t - last.index_select(0, fired)) >= min_gap]
        s_in = spikes_in[t]
        j_in, b_in = s_in.nonzero(as_tuple=True)
        b_f = torch.div(fired, na, rounding_mode="floor")
        i_f = fired - b_f * na
        n_f = fired.numel()
        if n_f:
            v.index_fill_(0, fired, params.v_reset)
            last.index_fill_(0, fired, t)
            counts.index_add_(0, fired, ones[:n_f])
            if r:
                keep = b_f < r
                assert raster is not None
                raster[t, i_f[keep], b_f[keep]] = True
        neg = -rates.a if astro else torch.full((batch,), -rates.eta)
        bx_f = (b_f * na)[:, None]
        # causal: incoming synapses of the neurons that fired now get rate x_pre (traces of t - 1); clipped
        # below, after the acausal changes, so that a synapse changed both ways is clipped once (reference)
        neg_f = neg.index_select(0, b_f)[:, None]
        pos_l = tab.in_pos_l.index_select(0, i_f).add_((b_f * liq.block)[:, None]).view(-1)
        dw = torch.where(tab.in_inh_l.index_select(0, i_f), neg_f, rates.eta).view(-1)
        dw.mul_(x.index_select(0, tab.in_pre_l.index_select(0, i_f).add_(bx_f).view(-1)))
        w_l.index_copy_(0, pos_l, w_l.index_select(0, pos_l).add_(dw))
        pos_i = tab.in_pos_i.index_select(0, i_f).add_((b_f * inp.block)[:, None]).view(-1)
        dw = x.index_select(0, tab.in_pre_i.index_select(0, i_f).add_(bx_f).view(-1)).mul_(rates.eta)
        w_i.index_copy_(0, pos_i, w_i.index_select(0, pos_i).add_(dw))
        # acausal: whole rows of the liquid and input neurons that fired now get rate x_post, then are
        # clipped; the rows are next step's current, onto the same flat indices as the traces
        rate = torch.where(tab.inh.index_select(0, i_f), rates.eta, neg_f.view(-1))[:, None]
        row = b_f * (n + 1) + i_f
        tgt_l = liq.post.index_select(0, i_f).add_(bx_f).view(-1)
        cur = rows_l.index_select(0, row)
        cur.add_(x.index_select(0, tgt_l).view(n_f, liq.k).mul_(rate))
        cur = torch.minimum(torch.maximum(cur, tab.lo.index_select(0, i_f)), tab.hi.index_select(0, i_f))
        rows_l.index_copy_(0, row, cur)
        cur_l = cur.view(-1)
        row = b_in * (n_in + 1) + j_in
        bx_i = b_in * na
        tgt_i = inp.post.index_select(0, j_in).add_(bx_i[:, None]).view(-1)
        cur = rows_i.index_select(0, row)
        cur.add_(x.index_select(0, tgt_i).view(row.numel(), inp.k).mul_(neg.index_select(0, b_in)[:, None]))
        cur.clamp_(lo_i, hi_i)
        rows_i.index_copy_(0, row, cur)
        cur_i = cur.view(-1)
        # clip the causal changes (idempotent where the acausal rows already clipped)
        wc = w_l.index_select(0, pos_l).view(n_f, tab.in_pos_l.shape[1])
        wc = torch.minimum(
            torch.maximum(wc, tab.in_lo_l.index_select(0, i_f)), tab.in_hi_l.index_select(0, i_f)
        )
        w_l.index_copy_(0, pos_l, wc.view(-1))
        w_i.index_copy_(0, pos_i, w_i.index_select(0, pos_i).clamp_(lo_i, hi_i))
        # traces: x <- d (x + a S)
        spk = torch.cat([fired, bx_i + n + j_in])
        x.index_add_(0, spk, tenth[: spk.numel()])
        x.mul_(d_x)
        if astro:
            n_liq = torch.zeros(batch).index_add_(0, b_f, ones[:n_f])
            n_inp = s_in.sum(0).to(torch.float32)
            rates.a = F.astro_step(rates.a, n_liq, n_inp, rates.w_astro, rates.b_astro, tau_astro)
        if decay != 1.0:
            rates.eta *= decay
            rates.w_astro *= decay
            rates.b_astro *= decay
            rates.a = rates.a * decay
    return counts.view(batch, na)[:, :n].contiguous()


def use_kernel(backend: str, w: torch.Tensor) -> bool:
    """Whether ``backend`` ("auto", "numba", "torch") selects the compiled kernel for weights ``w``."""
    from reservoir.spiking import plastic_kernel

    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'torch', got {backend!r}")
    if backend == "numba" and not plastic_kernel.AVAILABLE:
        raise RuntimeError("backend 'numba' needs numba (the neuro extra: pip install 'asicrc[neuro]')")
    return backend != "torch" and plastic_kernel.AVAILABLE and w.device.type == "cpu"


def _run_kernel(
    tab: PlasticTables,
    spikes_in: torch.Tensor,
    w_l: torch.Tensor,
    w_i: torch.Tensor,
    rates: PlasticRates,
    astro: bool,
    tau_astro: float,
    decay: float,
    params: F.LIFParams,
    raster: torch.Tensor | None,
) -> torch.Tensor:
    """:func:`run_plastic` by the numba kernel (same arguments, same in-place updates)."""
    from reservoir.spiking.plastic_kernel import kernel_tables, run_kernel

    steps, _, batch = spikes_in.shape
    a = rates.a.numpy().astype(np.float32, copy=True)
    ras = None if raster is None else np.zeros(tuple(raster.shape), dtype=np.bool_)
    counts = run_kernel(
        kernel_tables(tab),
        spikes_in.permute(2, 0, 1).numpy(),
        w_l.numpy().reshape(batch, -1),
        w_i.numpy().reshape(batch, -1),
        a,
        carry=False,
        eta=rates.eta,
        w_astro=rates.w_astro,
        b_astro=rates.b_astro,
        astro=astro,
        tau_astro=tau_astro,
        decay=decay,
        params=params,
        raster=ras,
    )
    if raster is not None:
        raster |= torch.from_numpy(ras)
    rates.a = torch.from_numpy(a)
    if decay != 1.0:  # the rates as the torch loop leaves them
        for _ in range(steps):
            rates.eta *= decay
            rates.w_astro *= decay
            rates.b_astro *= decay
    return torch.from_numpy(counts)
