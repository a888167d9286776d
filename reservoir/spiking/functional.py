"""Pure step functions with explicit state: LIF neurons, STDP traces/updates, the astrocyte (dt = 1 ms).

Every function returns new tensors and never mutates its inputs. Shapes are neuron-major, ``(n, batch)``, so
that a sparse ``(n, n_pre)`` weight matrix multiplies a spike matrix without transposes. Time is in steps of
``DT_MS``; voltages and currents are in the paper's arbitrary units (threshold 20).

Model (docs/methods.md; Ivanov & Michmizos 2021, code ``combra-lab/NALSM`` where docs/methods.md is silent):

- synaptic current: ``i <- d_u i + (d_u / tau_u) W S(t-1)`` with ``d_u = exp(-1/tau_u)``, i.e. a spike at t0
  delivers ``w exp(-(t - t0)/tau_u) / tau_u`` at every later step t (NALSM_LIF_v2.py ``currents``);
- membrane: ``V <- V - V/tau_v + i + I_in``; a neuron spikes when ``V >= v_th`` and it is not refractory,
  then ``V <- v_reset`` and it stays refractory for ``t_ref`` steps (V keeps integrating meanwhile, as in
  NALSM's ``register_spikes``/``update_refractory_var``);
- STDP traces: ``x <- d (x + a S)``, ``d = exp(-1/tau_x)``, a = 0.1, tau_x = 10 ms;
- STDP: ``dW = eta x_pre S_post - A x_post S_pre`` for excitatory/input presynaptic neurons and
  ``dW = -A x_pre S_post + eta x_post S_pre`` for inhibitory ones (NALSM_STDP.py), then clipped to bounds;
- astrocyte: ``A <- A + [w_astro (sum S_liquid - sum S_input) + b_astro - A] / tau_astro``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

DT_MS = 1.0  # integration step (docs/methods.md)
# LIF constants (docs/methods.md "Liquid state machine and NALSM").
TAU_V_MS = 64.0
V_TH = 20.0
V_RESET = 0.0
T_REF_MS = 2.0
TAU_U_MS = 1.0
# STDP constants (docs/methods.md; NALSM_STDP.py stdp_a_const=0.1, stdp_tau=10).
STDP_A = 0.1
STDP_TAU_MS = 10.0
ETA_PLUS = 0.15
# Astrocyte constants (docs/methods.md; NALSM_RUN_MAIN_SIM_MNIST.py ASTRO_TAU_IN=100).
TAU_ASTRO_MS = 100.0
A0 = 0.15
B_ASTRO = 0.15
W_ASTRO_1000 = 0.015
W_ASTRO_8000 = 0.0075


class LIFParams(NamedTuple):
    """LIF constants: time constants in ms, voltages in model units."""

    tau_v: float = TAU_V_MS
    v_th: float = V_TH
    v_reset: float = V_RESET
    t_ref: float = T_REF_MS
    tau_u: float = TAU_U_MS

    @property
    def d_u(self) -> float:
        """Per-step synaptic current decay ``exp(-dt/tau_u)``."""
        return math.exp(-DT_MS / self.tau_u)


DEFAULT_LIF = LIFParams()


class LIFState(NamedTuple):
    """LIF state, each tensor shaped like the neuron population (e.g. ``(n, batch)``).

    v: membrane potential; i: synaptic current (per step); refrac: refractory steps left;
    s: last spikes (0/1).
    """

    v: torch.Tensor
    i: torch.Tensor
    refrac: torch.Tensor
    s: torch.Tensor


def lif_init(
    shape: tuple[int, ...], dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> LIFState:
    """A resting population: V = 0, no current, not refractory, no spikes (on ``device``, default CPU)."""
    z = torch.zeros(shape, dtype=dtype, device=device)
    return LIFState(z, z.clone(), z.clone(), z.clone())


def lif_step(
    state: LIFState, syn_in: torch.Tensor, i_in: torch.Tensor | float = 0.0, p: LIFParams | None = None
) -> LIFState:
    """One 1 ms step (``p`` defaults to :data:`DEFAULT_LIF`).

    syn_in: weighted presynaptic spikes of the previous step, ``W @ S(t-1)`` (model units);
    i_in: external current injected this step (model units per step).
    """
    p = DEFAULT_LIF if p is None else p
    # fused forms of i = d_u i + (d_u/tau_u) syn_in and v = v - v/tau_v + i + i_in (fewer passes over memory)
    i = torch.add(state.i, syn_in, alpha=1.0 / p.tau_u).mul_(p.d_u)
    v = torch.add(i, state.v, alpha=1.0 - 1.0 / p.tau_v)
    if not (isinstance(i_in, float) and i_in == 0.0):
        v = v + i_in
    s = (v >= p.v_th).logical_and_(state.refrac <= 0)
    v.masked_fill_(s, p.v_reset)
    refrac = (state.refrac - 1.0).clamp_min_(0.0).masked_fill_(s, p.t_ref)
    return LIFState(v, i, refrac, s.to(v.dtype))


def lif_step_(state: LIFState, syn_in: torch.Tensor, p: LIFParams | None = None) -> LIFState:
    """In-place variant of :func:`lif_step` without external current, for simulator hot loops.

    Overwrites ``state``'s tensors (fewer allocations and passes over memory) and returns it; the results
    are bit-identical to :func:`lif_step` (same kernels in the same order).
    """
    p = DEFAULT_LIF if p is None else p
    state.i.add_(syn_in, alpha=1.0 / p.tau_u).mul_(p.d_u)
    torch.add(state.i, state.v, alpha=1.0 - 1.0 / p.tau_v, out=state.v)
    s = (state.v >= p.v_th).logical_and_(state.refrac <= 0)
    state.v.masked_fill_(s, p.v_reset)
    state.refrac.sub_(1.0).clamp_min_(0.0).masked_fill_(s, p.t_ref)
    state.s.copy_(s)
    return state


def trace_step(x: torch.Tensor, s: torch.Tensor, tau: float = STDP_TAU_MS, a: float = STDP_A) -> torch.Tensor:
    """STDP trace ``x <- d (x + a S)`` with ``d = exp(-dt/tau)`` (tau in ms)."""
    return math.exp(-DT_MS / tau) * (x + a * s)


def stdp_dw(
    x_pre: torch.Tensor,
    s_pre: torch.Tensor,
    x_post: torch.Tensor,
    s_post: torch.Tensor,
    pre_inhibitory: torch.Tensor,
    eta_plus: torch.Tensor | float,
    a_minus: torch.Tensor | float,
) -> torch.Tensor:
    """Weight change per synapse (same shapes as the gathered traces/spikes).

    Excitatory or input presynaptic: ``eta x_pre S_post - A x_post S_pre`` (causal pairs potentiate).
    Inhibitory presynaptic: signs swap, ``-A x_pre S_post + eta x_post S_pre`` (a causal pair makes the
    weight more negative, i.e. stronger inhibition, at rate A; an anti-causal pair weakens it at rate eta).
    ``pre_inhibitory`` is a bool tensor broadcastable to the synapse shape.
    """
    causal = x_pre * s_post
    acausal = x_post * s_pre
    dw_exc = eta_plus * causal - a_minus * acausal
    dw_inh = eta_plus * acausal - a_minus * causal
    return torch.where(pre_inhibitory, dw_inh, dw_exc)


def astro_step(
    a: torch.Tensor,
    liquid_spikes: torch.Tensor,
    input_spikes: torch.Tensor,
    w_astro: float | torch.Tensor,
    b_astro: float | torch.Tensor,
    tau: float = TAU_ASTRO_MS,
) -> torch.Tensor:
    """Astrocyte ``A <- A + [w (sum S_liquid - sum S_input) + b - A] / tau`` (tau in ms).

    liquid_spikes/input_spikes: spike counts summed over neurons this step (e.g. shape ``(batch,)``).
    """
    return a + (w_astro * (liquid_spikes - input_spikes) + b_astro - a) / tau


class LIF(torch.nn.Module):
    """Stateful wrapper around :func:`lif_step` for interactive use (the simulator calls the function)."""

    def __init__(self, params: LIFParams = DEFAULT_LIF) -> None:
        super().__init__()
        self.params = params
        self.state: LIFState | None = None

    def forward(self, syn_in: torch.Tensor, i_in: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Advance 1 ms; returns the spikes (0/1, same shape as ``syn_in``)."""
        if self.state is None:
            self.state = lif_init(tuple(syn_in.shape), syn_in.dtype)
        self.state = lif_step(self.state, syn_in, i_in, self.params)
        return self.state.s

    def reset(self) -> None:
        """Forget the state (next call starts at rest)."""
        self.state = None


class Astrocyte:
    """Stateful wrapper around :func:`astro_step` holding A (the depression rate)."""

    def __init__(self, a0: float = A0, w_astro: float = W_ASTRO_1000, b_astro: float = B_ASTRO) -> None:
        self.a0, self.w_astro, self.b_astro = a0, w_astro, b_astro
        self.a = torch.tensor(a0)

    def step(self, liquid_spikes: torch.Tensor, input_spikes: torch.Tensor) -> torch.Tensor:
        """Advance 1 ms; returns the new A."""
        self.a = astro_step(self.a, liquid_spikes, input_spikes, self.w_astro, self.b_astro)
        return self.a
