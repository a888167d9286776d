"""Physical model of a BM1366 chain: power, thermal RC, stability limit, error model, supply events.

One parameter dataclass (:class:`PhysicsParams`, each field with its source or reasoning) and one vectorised
state (:class:`ChainPhysics`, numpy arrays over chips) advanced by a pure-ish ``step(dt)``. Units: volts,
hertz, watts, kelvin/celsius, seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: Small cores per chip (112 cores x 8), docs/protocol.md "Rates".
SMALL_CORES = 894
#: Big cores whose id ESP-Miner reads from nonce bits 31-25.
CORES = 112


@dataclass(frozen=True, slots=True)
class PhysicsParams:
    """Every constant of the model. Defaults: ESP-Miner-like (485 MHz at 1.2 V stable, 50-65 C)."""

    # --- power -------------------------------------------------------------------------------------------
    #: Effective switched capacitance (F): P_dyn = C V^2 f. A Bitaxe Ultra (one BM1366) draws ~11-12 W at
    #: 485 MHz / 1.2 V (ESP-Miner UI); ~9 W of that dynamic -> 9 / (1.2^2 * 485e6) = 1.29e-8 F.
    c_eff_f: float = 1.29e-8
    #: Leakage current (A) at v_ref and 25 C. Chosen so leakage is ~10-15 % of power at 60 C (typical 7-16 nm
    #: logic at high activity); no public BM1366 figure.
    leak_i0_a: float = 0.4
    #: Leakage e-folding voltage (V): sub-threshold/DIBL leakage grows ~e-fold per 0.1 V (reasoning).
    leak_v_slope_v: float = 0.1
    #: Leakage e-folding temperature (K): leakage roughly doubles every ~20 K -> e-fold 30 K (reasoning).
    leak_t_slope_k: float = 30.0
    #: Reference voltage (V) for leakage and the stability limit: ESP-Miner default core voltage.
    v_ref_v: float = 1.2
    #: Idle (clock-off / PLL-only) power per chip (W), so a chip at 50 MHz is not at ambient (assumption).
    idle_w: float = 0.2
    # --- thermal -----------------------------------------------------------------------------------------
    #: Ambient temperature (C).
    ambient_c: float = 25.0
    #: Thermal resistance junction->air with the fan at 100 % (K/W): a 40 mm heatsink + fan (Bitaxe class).
    r_th_fan_full_kw: float = 2.5
    #: Thermal resistance with the fan stopped (K/W): passive 40 mm heatsink, ~12 K/W.
    r_th_fan_off_kw: float = 12.0
    #: Heat capacity (J/K): die + spreader + part of the heatsink; with ~3 K/W gives tau ~ 45 s (assumption).
    c_th_jk: float = 15.0
    #: Fan duty at power-up (0-1); 0.75 gives ~58 C at 485 MHz / 1.2 V (ESP-Miner auto-fan holds ~60 C).
    fan_duty: float = 0.75
    # --- stability / errors ------------------------------------------------------------------------------
    #: Stability limit (Hz) at v_ref and t_ref_c for a typical chip: ~15 % above the 485 MHz default, where
    #: users report errors starting at 1.2 V (overclocking reports in the 525-575 MHz range).
    f_limit_hz: float = 560e6
    #: Relative gain of the limit per volt (1/V): +0.1 V buys ~15 % clock (1.3 V ~ 600+ MHz user reports).
    f_limit_v_gain: float = 1.5
    #: Relative loss of the limit per kelvin above t_ref_c (1/K): CMOS delay +0.3 %/K (reasoning).
    f_limit_t_coef: float = 0.003
    #: Temperature (C) at which f_limit_hz applies.
    t_ref_c: float = 60.0
    #: Width (relative overclock) of the invalid-nonce rise: p_inv = 1 - exp(-(x / w)^2), x = f/f_lim - 1.
    invalid_width: float = 0.05
    #: Width of the missing-nonce collapse: rate multiplier exp(-(x / w)^2).
    missing_width: float = 0.08
    #: Invalid-nonce floor when stable (fraction): HW-error rates ~1e-4 on healthy boards (ESP-Miner logs).
    invalid_floor: float = 1e-4
    # --- process variation (per chip, lognormal sigma) ------------------------------------------------------
    #: Spread of the stability limit between chips (relative sigma): binning spread of a few percent.
    sigma_f_limit: float = 0.03
    #: Spread of leakage (relative sigma): leakage varies strongly with process corner.
    sigma_leak: float = 0.10
    #: Spread of switched capacitance (relative sigma).
    sigma_c_eff: float = 0.03
    # --- supply / clock ------------------------------------------------------------------------------------
    #: PLL relock dead time after a PLL0 write (s): no nonces while relocking (PLL lock times are 10s of
    #: microseconds to ~1 ms; 1 ms chosen, assumption).
    pll_relock_s: float = 1e-3
    #: Regulator slew rate (V/s): TPS546D24A VOUT_TRANSITION_RATE default 1 mV/us.
    slew_v_per_s: float = 1000.0
    #: Brown-out floor (V): below it every chip resets and stays in reset until the voltage recovers
    #: (BM1366 is not run below ~1.0 V by any public host; assumption).
    v_floor_v: float = 0.95
    #: Core voltage at power-up (V): the board's regulator starts at the ESP-Miner default.
    v_start_v: float = 1.2


def stability_limit_hz(p: PhysicsParams, volts: float, temp_c: F64, chip_scale: F64) -> F64:
    """Highest stable clock (Hz) per chip at ``volts`` and ``temp_c`` (C)."""
    v_term = 1.0 + p.f_limit_v_gain * (volts - p.v_ref_v)
    t_term = 1.0 - p.f_limit_t_coef * (temp_c - p.t_ref_c)
    return np.maximum(p.f_limit_hz * chip_scale * v_term * t_term, 1e6)


def error_fractions(p: PhysicsParams, freq_hz: F64, limit_hz: F64) -> tuple[F64, F64]:
    """``(p_invalid, rate_multiplier)`` per chip from the overclock ``x = f / f_limit - 1``."""
    x = np.maximum(freq_hz / limit_hz - 1.0, 0.0)
    p_inv = np.maximum(1.0 - np.exp(-((x / p.invalid_width) ** 2)), p.invalid_floor)
    mult = np.exp(-((x / p.missing_width) ** 2))
    return p_inv, mult


def chip_power_w(p: PhysicsParams, volts: float, freq_hz: F64, temp_c: F64, c_eff: F64, leak: F64) -> F64:
    """Power per chip (W): ``C V^2 f`` + leakage ``V I0 e^((V-Vref)/Vs) e^((T-25)/Ts)`` + idle."""
    dyn = c_eff * volts * volts * freq_hz
    v_fac = math.exp((volts - p.v_ref_v) / p.leak_v_slope_v)
    i_leak = leak * v_fac * np.exp((temp_c - 25.0) / p.leak_t_slope_k)
    return dyn + volts * i_leak + p.idle_w


def thermal_resistance(p: PhysicsParams, fan_duty: float) -> float:
    """Junction->air resistance (K/W): fan conductance adds linearly with duty (0-1)."""
    g_off = 1.0 / p.r_th_fan_off_kw
    g_full = 1.0 / p.r_th_fan_full_kw
    return 1.0 / (g_off + (g_full - g_off) * min(max(fan_duty, 0.0), 1.0))


@dataclass
class ChainPhysics:
    """Mutable physical state of a chain. Arrays are per chip; voltage and fan are per board."""

    params: PhysicsParams
    chips: int
    seed: int
    temp_c: F64 = field(init=False)
    chip_f_scale: F64 = field(init=False)
    chip_leak: F64 = field(init=False)
    chip_c_eff: F64 = field(init=False)
    volts: float = field(init=False)
    v_target: float = field(init=False)
    fan_duty: float = field(init=False)
    powered: bool = True
    extra_heat_w: F64 = field(init=False)

    def __post_init__(self) -> None:
        p = self.params
        rng = np.random.default_rng([self.seed, 0x9417])
        n = self.chips
        self.chip_f_scale = np.exp(rng.normal(0.0, p.sigma_f_limit, n))
        self.chip_leak = p.leak_i0_a * np.exp(rng.normal(0.0, p.sigma_leak, n))
        self.chip_c_eff = p.c_eff_f * np.exp(rng.normal(0.0, p.sigma_c_eff, n))
        self.volts = p.v_start_v
        self.v_target = p.v_start_v
        self.fan_duty = p.fan_duty
        self.extra_heat_w = np.zeros(n)
        self.temp_c = np.full(n, p.ambient_c)

    def settle(self, freq_hz: F64) -> None:
        """Put every chip at its steady-state temperature for ``freq_hz`` (a board that has been running)."""
        for _ in range(50):
            self.temp_c = self.steady_state_c(freq_hz)

    def steady_state_c(self, freq_hz: F64) -> F64:
        """Temperature (C) each chip tends to at the current voltage, fan and ``freq_hz``."""
        r = thermal_resistance(self.params, self.fan_duty)
        return self.params.ambient_c + r * (self.power_w(freq_hz) + self.extra_heat_w)

    def power_w(self, freq_hz: F64) -> F64:
        """Power per chip (W) now; zero when the regulator is off."""
        if not self.powered or self.volts <= 0.0:
            return np.zeros(self.chips)
        return chip_power_w(self.params, self.volts, freq_hz, self.temp_c, self.chip_c_eff, self.chip_leak)

    def tau_s(self) -> float:
        """Thermal time constant (s) at the current fan duty."""
        return thermal_resistance(self.params, self.fan_duty) * self.params.c_th_jk

    def step(self, dt: float, freq_hz: F64) -> None:
        """Advance voltage (slew) and temperature (exact RC update for constant power) by ``dt`` seconds."""
        if dt <= 0.0:
            return
        target = self.v_target if self.powered else 0.0
        dv = target - self.volts
        max_dv = self.params.slew_v_per_s * dt
        self.volts = target if abs(dv) <= max_dv else self.volts + math.copysign(max_dv, dv)
        t_ss = self.steady_state_c(freq_hz)
        self.temp_c = t_ss + (self.temp_c - t_ss) * math.exp(-dt / self.tau_s())

    def limits_hz(self) -> F64:
        """Stability limit (Hz) per chip now."""
        return stability_limit_hz(self.params, self.volts, self.temp_c, self.chip_f_scale)

    @property
    def browned_out(self) -> bool:
        """True while the core voltage is below the brown-out floor."""
        return self.volts < self.params.v_floor_v
