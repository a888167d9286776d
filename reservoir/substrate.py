"""The seam between the hardware-in-the-loop reservoir and whatever produces nonce events.

A :class:`Substrate` applies a :class:`SlotSchedule` (per slot: a frequency setpoint, optionally a voltage,
for a fixed slot duration) and returns one :class:`EventSlot` per slot with the events observed in it. The
daemon implements it for real boards and the emulator (``daemon.substrate``); this module holds two pure-numpy
substrates for tests and the null:

* :class:`PoissonSubstrate`: homogeneous Poisson events, rate independent of the setpoints (the null);
* :class:`RateModelSubstrate`: a toy physical chip, rate proportional to an effective frequency that follows
  the setpoint through a first-order lag, temperature following the power more slowly, seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

NS_PER_S = 1_000_000_000
#: BM1366 cores per chip addressed by the nonce's core field (docs/protocol.md: 112 cores).
N_CORES = 112
#: Toy model constants: reference frequency (MHz, ESP-Miner default 485) and ambient/slope of the temperature.
REF_FREQ_MHZ = 485.0
AMBIENT_C, DEG_PER_MHZ = 40.0, 0.03


@dataclass(frozen=True)
class SlotSchedule:
    """Setpoints per slot: ``freq_mhz`` (n_slots,) or (n_slots, n_chips); ``voltage_v`` likewise or None
    (keep the current voltage); every slot lasts ``slot_ns``."""

    freq_mhz: F64
    slot_ns: int
    voltage_v: F64 | None = None

    @property
    def n_slots(self) -> int:
        """Number of slots."""
        return int(self.freq_mhz.shape[0])


@dataclass(frozen=True)
class EventSlot:
    """Events observed during one slot: ``t_ns`` (n,) int64 absolute timestamps, ``chip``/``core`` (n,)
    int16, ``valid`` (n,) bool; ``temperature_c`` (n_chips,) mean chip temperature in the slot;
    ``start_ns`` and ``duration_ns`` of the slot."""

    t_ns: I64
    chip: NDArray[np.int16]
    core: NDArray[np.int16]
    valid: NDArray[np.bool_]
    temperature_c: F64
    start_ns: int
    duration_ns: int


@runtime_checkable
class Substrate(Protocol):
    """Anything that runs a setpoint schedule and reports the events per slot."""

    n_chips: int

    def run(self, schedule: SlotSchedule) -> list[EventSlot]: ...


def _per_chip(a: F64, n_chips: int) -> F64:
    a = np.asarray(a, dtype=np.float64)
    return np.repeat(a[:, None], n_chips, axis=1) if a.ndim == 1 else a


def _slots(
    rng: np.random.Generator, lam: F64, invalid_p: F64, temp: F64, t0_ns: int, slot_ns: int
) -> list[EventSlot]:
    """Events for all slots at once: counts ~ Poisson(lam) (n_slots, n_chips), times uniform in their slot
    (a Poisson process conditioned on its count), cores uniform, validity ~ Bernoulli(1 - invalid_p)."""
    n_slots, n_chips = lam.shape
    counts = rng.poisson(lam).reshape(-1)
    n = int(counts.sum())
    g = np.repeat(np.arange(n_slots * n_chips), counts)
    slot_of = g // n_chips
    chip = (g % n_chips).astype(np.int16)
    t = t0_ns + slot_of * slot_ns + rng.integers(0, slot_ns, n, dtype=np.int64)
    order = np.lexsort((t, slot_of))
    t, chip, slot_of = t[order], chip[order], slot_of[order]
    core = rng.integers(0, N_CORES, n).astype(np.int16)
    valid = rng.random(n) >= invalid_p.reshape(-1)[g[order]]
    edges = np.searchsorted(slot_of, np.arange(n_slots + 1))
    return [
        EventSlot(
            t[edges[i] : edges[i + 1]],
            chip[edges[i] : edges[i + 1]],
            core[edges[i] : edges[i + 1]],
            valid[edges[i] : edges[i + 1]],
            temp[i],
            t0_ns + i * slot_ns,
            slot_ns,
        )
        for i in range(n_slots)
    ]


class PoissonSubstrate:
    """Homogeneous Poisson events at ``rate_hz`` per chip whatever the setpoints (the null substrate)."""

    def __init__(
        self, n_chips: int = 1, rate_hz: float = 100.0, invalid_p: float = 0.01, seed: int = 0, t0_ns: int = 0
    ) -> None:
        self.n_chips = n_chips
        self.rate_hz = rate_hz
        self.invalid_p = invalid_p
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._t = t0_ns

    def run(self, schedule: SlotSchedule) -> list[EventSlot]:
        """Events per slot; the schedule sets only the number and length of slots."""
        shape = (schedule.n_slots, self.n_chips)
        lam = np.full(shape, self.rate_hz * schedule.slot_ns / NS_PER_S)
        p = np.full(shape, self.invalid_p)
        temp = AMBIENT_C + DEG_PER_MHZ * REF_FREQ_MHZ + 0.1 * self._rng.standard_normal(shape)
        out = _slots(self._rng, lam, p, temp, self._t, schedule.slot_ns)
        self._t += schedule.n_slots * schedule.slot_ns
        return out


class RateModelSubstrate:
    """Toy chip: effective frequency f_eff follows the setpoint with time constant ``tau_ns`` (first-order
    lag, per chip with a +-``spread`` gain mismatch); event rate = ``rate_hz`` * f_eff / REF_FREQ_MHZ;
    invalid-share probability grows when f_eff exceeds what the voltage supports; temperature follows
    f_eff with time constant ``tau_temp_ns``. Seeded; deterministic for a given seed and schedule."""

    def __init__(
        self,
        n_chips: int = 1,
        rate_hz: float = 100.0,
        tau_ns: int = 2_000_000,
        tau_temp_ns: int = 2_000_000_000,
        spread: float = 0.05,
        seed: int = 0,
        t0_ns: int = 0,
    ) -> None:
        self.n_chips = n_chips
        self.rate_hz = rate_hz
        self.tau_ns = tau_ns
        self.tau_temp_ns = tau_temp_ns
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._gain = 1.0 + spread * self._rng.uniform(-1, 1, n_chips)
        self._f = np.full(n_chips, REF_FREQ_MHZ)
        self._temp = np.full(n_chips, AMBIENT_C + DEG_PER_MHZ * REF_FREQ_MHZ)
        self._v: F64 | float = 1.2
        self._t = t0_ns

    def run(self, schedule: SlotSchedule) -> list[EventSlot]:
        """Integrate the lag exactly per slot (setpoint held), draw the events, return them per slot."""
        f_set = _per_chip(schedule.freq_mhz, self.n_chips)
        v_set = None if schedule.voltage_v is None else _per_chip(schedule.voltage_v, self.n_chips)
        dt = schedule.slot_ns
        k = np.exp(-dt / self.tau_ns)
        k_temp = np.exp(-dt / self.tau_temp_ns)
        shape = (schedule.n_slots, self.n_chips)
        f_mean, temp, volts = np.empty(shape), np.empty(shape), np.empty(shape)
        for i in range(schedule.n_slots):
            target = f_set[i] * self._gain
            # mean of f_eff over the slot under the exact first-order response
            f_mean[i] = target + (self._f - target) * (1 - k) * self.tau_ns / dt
            self._f = target + (self._f - target) * k
            t_target = AMBIENT_C + DEG_PER_MHZ * f_mean[i]
            self._temp = t_target + (self._temp - t_target) * k_temp
            temp[i] = self._temp
            if v_set is not None:
                self._v = v_set[i]
            volts[i] = self._v
        # invalid fraction: logistic in the frequency headroom, about 500 MHz per volt (toy only)
        invalid_p = 1.0 / (1.0 + np.exp(-(f_mean / (500.0 * volts) - 1.0) * 20.0))
        lam = np.clip(self.rate_hz * f_mean / REF_FREQ_MHZ * dt / NS_PER_S, 0.0, None)
        temp = temp + 0.05 * self._rng.standard_normal(shape)
        out = _slots(self._rng, lam, invalid_p, temp, self._t, dt)
        self._t += schedule.n_slots * dt
        return out
