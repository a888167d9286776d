"""The hardware-in-the-loop reservoir: input -> masked frequency setpoints -> substrate -> event features.

Each input step u(t) (scaled to [-1, 1] from the training split) is spread over S sub-slots (virtual nodes,
as in single-node delay reservoirs): sub-slot j gets x_j = clip(m_j . u(t) / d_in, -1, 1) with a fixed random
mask m_j (seeded), and the frequency setpoint f = f_mid + x_j (f_max - f_min) / 2. The substrate runs the
slots and returns the events; :mod:`reservoir.features` turns each step's S slots into its state row. The
caller gives [f_min, f_max]; the daemon enforces its safety envelope again.

Masks (option ``mask``): ``"positive"`` (default) m_j = |U[-1, 1]^d_in|, every sub-slot driven with the
same sign, so the step's mean clock follows the input (mean mask 0.5 per input); ``"symmetric"`` m_j ~
U[-1, 1]^d_in, the same magnitudes with random signs. A slow substrate state (temperature, mean power, any
trace longer than a step) integrates the clock over the sub-slots; under symmetric masks that mean is
~N(0, 1/(3 S)) x u, so such a memory is nearly invisible by construction (docs/asic-results.md, "Detection
power"). Per-sub-slot gains |m_j| are identical under both, so a memoryless readout of the present input
loses nothing.

Mask magnitudes (option ``mask_scale``): ``"full"`` (default) scales each sub-slot's row so its magnitudes
sum to d_in, so the clock reaches both ends of [f_min, f_max] (with d_in = 1 every |m_j| = 1: the input
spans the whole range in every sub-slot); ``"uniform"`` keeps the drawn magnitudes U[0, 1] (mean 0.5: on
average half the range). A slow state's swing is proportional to the mean mask, so its memory capacity
(~swing^2) is ~4x larger under ``"full"`` (docs/asic-results.md, "Detection power"). With d_in = 1 the
sub-slots then share one clock: virtual-node diversity is traded for range (it only matters for a
nonlinear substrate response, where different operating points give different basis functions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reservoir.features import FEATURES, LOG_EXP_SD, noise_floor, states_from_slots
from reservoir.spec import ReservoirSpec
from reservoir.substrate import EventSlot, PoissonSubstrate, RateModelSubstrate, SlotSchedule, Substrate

F64 = NDArray[np.float64]

#: Frequency range (MHz) offered by ESP-Miner's UI for the BM1366 (docs/protocol.md, "Safety figures in use").
F_MIN_MHZ, F_MAX_MHZ = 400.0, 575.0
#: Default slot (virtual node) length: 1 ms, and the default sub-slots per input step.
SLOT_NS = 1_000_000
DEFAULT_SUB = 17
#: Steps sent to the substrate per call (bounds the events held in memory at once).
CHUNK_STEPS = 500
#: Inputs per step when a static sample is presented as a sequence (as the ESN does).
SAMPLE_CHUNK = 8
#: Input mask designs (module docstring); the first is the default.
MASKS: tuple[str, ...] = ("positive", "symmetric")
#: Mask magnitude scalings (option ``mask_scale``; module docstring); the first is the default.
MASK_SCALES: tuple[str, ...] = ("full", "uniform")


@dataclass(frozen=True)
class NoiseStats:
    """Running totals for the shot-noise floor: slots seen, events on chips [0, n_chips), invalid events.

    Totals add (``a + b``), so the floor over several runs or seeds is weighted by slots, not by run.
    """

    n_chips: int
    n_slots: int = 0
    n_events: int = 0
    n_invalid: int = 0

    @classmethod
    def of(cls, slots: list[EventSlot], n_chips: int) -> NoiseStats:
        """Totals of ``slots`` (events on chips outside [0, n_chips) are ignored, as in features)."""
        ev = inv = 0
        for s in slots:
            on = (s.chip >= 0) & (s.chip < n_chips)
            ev += int(np.count_nonzero(on))
            inv += int(np.count_nonzero(on & ~s.valid))
        return cls(n_chips, len(slots), ev, inv)

    def __add__(self, other: NoiseStats) -> NoiseStats:
        if other.n_chips != self.n_chips:
            raise ValueError(f"cannot add noise stats of {self.n_chips} and {other.n_chips} chips")
        return NoiseStats(
            self.n_chips,
            self.n_slots + other.n_slots,
            self.n_events + other.n_events,
            self.n_invalid + other.n_invalid,
        )

    def floor(self) -> dict[str, float]:
        """:func:`reservoir.features.noise_floor` from the totals (same formulas, no slots held)."""
        if self.n_slots == 0:
            return noise_floor([], self.n_chips)
        m = self.n_events / (self.n_slots * self.n_chips)
        p = self.n_invalid / max(self.n_events, 1)
        return {
            "mean_count_per_slot": m,
            "count": float(1.0 / np.sqrt(m)) if m > 0 else float("inf"),
            "log_iv_mean": float(LOG_EXP_SD / np.sqrt(m - 1.0)) if m > 1 else float("inf"),
            "invalid_frac": float(np.sqrt(p * (1 - p) / m)) if m > 0 else float("inf"),
        }


def input_mask(seed: int, n_sub: int, d: int, kind: str = MASKS[0], scale: str = MASK_SCALES[0]) -> F64:
    """The fixed random input mask (n_sub, d) of a seed (module docstring: ``positive`` or ``symmetric``;
    ``full``: each row's magnitudes sum to d, so the clock spans the whole range, or ``uniform``)."""
    m = np.random.default_rng(seed).uniform(-1.0, 1.0, (n_sub, d))
    if scale == "full":
        m = m * (d / np.maximum(np.abs(m).sum(axis=1, keepdims=True), 1e-12))
    return np.abs(m) if kind == "positive" else m


def mask_setpoints(u: F64, mask: F64, f_min: float, f_max: float) -> F64:
    """Frequency setpoints (T * S,) in MHz for inputs ``u`` (T, d) in [-1, 1] through ``mask`` (S, d)."""
    u = np.asarray(u, dtype=np.float64).reshape(len(u), -1)
    x = np.clip(u @ mask.T / u.shape[1], -1.0, 1.0)  # (T, S)
    mid, half = 0.5 * (f_min + f_max), 0.5 * (f_max - f_min)
    return np.asarray(np.clip(mid + half * x, f_min, f_max).reshape(-1), dtype=np.float64)


def slot_states(slots: list[EventSlot], n_steps: int, n_sub: int, n_chips: int, slot_ns: int) -> F64:
    """State rows (n_steps, n_sub * n_chips * len(FEATURES)); counts scaled to the nominal ``slot_ns`` (a
    substrate that starts each slot when its setpoint took effect returns slots of uneven ``duration_ns``)."""
    S = states_from_slots(slots, n_steps, n_sub, n_chips)
    d = np.array([s.duration_ns for s in slots], dtype=np.float64)
    if np.all(d == slot_ns):
        return S
    scale = np.where(d > 0, slot_ns / np.maximum(d, 1.0), 1.0).reshape(n_steps, n_sub, 1)
    view = S.reshape(n_steps, n_sub, n_chips, len(FEATURES))
    view[..., FEATURES.index("count")] *= scale
    return S


class AsicReservoir:
    """SeriesReservoir and SampleReservoir over a :class:`Substrate` (see reservoir.registry)."""

    def __init__(
        self,
        substrate: Substrate,
        n_inputs: int,
        n_sub: int = DEFAULT_SUB,
        f_min: float = F_MIN_MHZ,
        f_max: float = F_MAX_MHZ,
        slot_ns: int = SLOT_NS,
        seed: int = 0,
        mask: str = MASKS[0],
        mask_scale: str = MASK_SCALES[0],
    ) -> None:
        if not f_max > f_min:
            raise ValueError(f"f_max ({f_max}) must exceed f_min ({f_min}) MHz")
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {', '.join(MASKS)}, got {mask!r}")
        if mask_scale not in MASK_SCALES:
            raise ValueError(f"mask_scale must be one of {', '.join(MASK_SCALES)}, got {mask_scale!r}")
        self.substrate = substrate
        self.n_inputs = n_inputs
        self.n_sub = n_sub
        self.f_min, self.f_max = f_min, f_max
        self.slot_ns = slot_ns
        self.seed = seed
        self.mask = mask
        self.mask_scale = mask_scale
        self.n_chips = int(substrate.n_chips)
        self.state_dim = n_sub * self.n_chips * len(FEATURES)
        self._mask: F64 | None = None
        self._noise = NoiseStats(self.n_chips)

    def _get_mask(self, d: int) -> F64:
        if self._mask is None or self._mask.shape[1] != d:
            self._mask = input_mask(self.seed, self.n_sub, d, self.mask, self.mask_scale)
        return self._mask

    def setpoints(self, u: F64) -> F64:
        """Frequency setpoints (T * S,) in MHz for inputs u (T, d)."""
        u = np.asarray(u, dtype=np.float64).reshape(len(u), -1)
        return mask_setpoints(u, self._get_mask(u.shape[1]), self.f_min, self.f_max)

    def reset(self) -> None:
        """Forget the noise-floor statistics (the substrate itself keeps running: a physical state)."""
        self._noise = NoiseStats(self.n_chips)

    def run(self, u: F64) -> F64:
        """States (T, state_dim) for inputs u (T, d)."""
        u = np.asarray(u, dtype=np.float64).reshape(len(u), -1)
        out = np.empty((u.shape[0], self.state_dim))
        for a in range(0, u.shape[0], CHUNK_STEPS):
            chunk = u[a : a + CHUNK_STEPS]
            slots = self.substrate.run(SlotSchedule(self.setpoints(chunk), self.slot_ns))
            out[a : a + len(chunk)] = self._states(slots, len(chunk))
            self._remember(slots)
        return out

    def _states(self, slots: list[EventSlot], n_steps: int) -> F64:
        """State rows; counts scaled to the nominal slot (a substrate that starts each slot when its
        setpoint took effect, as the daemon's does, returns slots of slightly uneven ``duration_ns``)."""
        return slot_states(slots, n_steps, self.n_sub, self.n_chips, self.slot_ns)

    def _remember(self, slots: list[EventSlot]) -> None:
        # running totals over every slot since reset() (the mean count is all the floor needs)
        self._noise = self._noise + NoiseStats.of(slots, self.n_chips)

    def noise_stats(self) -> NoiseStats:
        """Totals behind :meth:`noise_floor` since reset() (add them across seeds to weight by slots)."""
        return self._noise

    def noise_floor(self) -> dict[str, float]:
        """Shot-noise floor of the features at the mean event count over every slot since reset()."""
        return self._noise.floor()

    def _samples(self, X: F64) -> F64:
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        steps = -(-d // SAMPLE_CHUNK)
        padded = np.zeros((n, steps * SAMPLE_CHUNK))
        padded[:, :d] = X * 2.0 - 1.0  # [0, 1] -> [-1, 1]
        seq = padded.reshape(n * steps, SAMPLE_CHUNK)
        return self.run(seq).reshape(n, steps * self.state_dim)

    def fit_transform(self, X: F64) -> F64:
        """Features (n, steps * state_dim): a sample as rows of SAMPLE_CHUNK inputs, states concatenated."""
        return self._samples(X)

    def transform(self, X: F64) -> F64:
        """As fit_transform."""
        return self._samples(X)


def n_sub_for_size(size: int | None, n_chips: int) -> int:
    """Sub-slots giving a state size of about ``size`` (ceil(size / (n_chips * len(FEATURES))))."""
    if size is None:
        return DEFAULT_SUB
    return max(1, -(-size // (n_chips * len(FEATURES))))


def _common(spec: ReservoirSpec, substrate: Substrate) -> AsicReservoir:
    o: dict[str, Any] = spec.options
    return AsicReservoir(
        substrate,
        spec.n_inputs,
        n_sub=int(o.get("n_sub") or n_sub_for_size(spec.size, int(substrate.n_chips))),
        f_min=float(o.get("f_min", F_MIN_MHZ)),
        f_max=float(o.get("f_max", F_MAX_MHZ)),
        slot_ns=int(o.get("slot_ns", SLOT_NS)),
        seed=spec.seed,
        mask=str(o.get("mask", MASKS[0])),
        mask_scale=str(o.get("mask_scale", MASK_SCALES[0])),
    )


def make_asic(spec: ReservoirSpec) -> AsicReservoir:
    """Registry factory: ``spec.options["substrate"]`` is a Substrate, or a callable(seed) -> Substrate, or
    the string "rate-model" (the toy :class:`RateModelSubstrate`, options ``rate_hz``, ``n_chips``)."""
    sub = spec.options.get("substrate")
    if sub is None:
        raise ValueError(
            "asic reservoir needs a substrate: options['substrate'] = a Substrate, a factory or 'rate-model'"
        )
    if sub == "rate-model":
        sub = RateModelSubstrate(
            n_chips=int(spec.options.get("n_chips", 1)),
            rate_hz=float(spec.options.get("rate_hz", 20_000.0)),
            seed=spec.seed,
        )
    elif callable(sub) and not isinstance(sub, Substrate):
        sub = sub(spec.seed)
    return _common(spec, sub)


def make_poisson_asic(spec: ReservoirSpec) -> AsicReservoir:
    """The asic pipeline on a :class:`PoissonSubstrate` (options ``rate_hz``, ``n_chips``, ``invalid_p``).

    Option ``draw`` (int >= 0, default 0): which Poisson realisation of the seed. The input mask is the
    seed's whatever the draw; draw 0 seeds the events with the seed itself, draw k > 0 with
    ``SeedSequence([seed, k])``, so the matched null can average several realisations per seed.
    """
    draw = int(spec.options.get("draw", 0))
    if draw < 0:
        raise ValueError(f"poisson-null draw must be >= 0, got {draw}")
    seed = spec.seed if draw == 0 else int(np.random.SeedSequence([spec.seed, draw]).generate_state(1)[0])
    sub = PoissonSubstrate(
        n_chips=int(spec.options.get("n_chips", 1)),
        rate_hz=float(spec.options.get("rate_hz", 20_000.0)),
        invalid_p=float(spec.options.get("invalid_p", 0.01)),
        seed=seed,
    )
    return _common(spec, sub)
