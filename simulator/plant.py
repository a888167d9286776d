"""Planted input-dependent dynamics: positive controls for the hardware reservoir (docs/emulator.md).

The emulator's physics makes each chip's nonce rate follow its clock with no lag, and its other knobs
(dead time, drift, modulation) ignore the input. A *plant* adds a known, input-dependent computation so the
instrument's power to detect one can be measured. All are OFF unless named, each with a gain:

* ``echo`` (linear fading memory): ``rate *= max(0, 1 + G (m - 0.5))`` with ``m`` a leaky trace (time
  constant ``tau_ms`` of emulated time) of the clock normalised over [``f_lo_mhz``, ``f_hi_mhz``], clipped to
  [0, 1].
* ``threshold`` (memory + nonlinearity): ``q`` a leaky trace (``tau_ms``) of the chip power normalised
  between its values at ``f_lo_mhz`` and ``f_hi_mhz`` (reference voltage, the chip's temperature); the switch
  ``s = 1 / (1 + exp(-(q - level) / width))``; ``rate *= max(0, 1 - G s (1 - invalid))`` and the
  invalid-nonce fraction gains ``min(1, G s invalid)``.

Traces update on the physics grid with the exact exponential step for a value held over the step; the
multipliers apply to the piecewise-constant rate. ``KIND=GAIN`` and ``KIND.NAME=VALUE`` are the text forms
(``asicrc sim --plant``, ``[simulate] plant``, ``asicrc bench --simulate --plant``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.physics import ChainPhysics, chip_power_w

F64 = npt.NDArray[np.float64]

#: Every plant kind with its parameters and their defaults (units in the names).
DEFAULTS: dict[str, dict[str, float]] = {
    "echo": {"tau_ms": 300.0, "f_lo_mhz": 400.0, "f_hi_mhz": 575.0},
    "threshold": {
        "tau_ms": 300.0,
        "level": 0.5,
        "width": 0.05,
        "invalid": 0.0,
        "f_lo_mhz": 400.0,
        "f_hi_mhz": 575.0,
    },
}
#: Largest gain accepted (a planted effect, not a different chip).
MAX_GAIN = 10.0


@dataclass(frozen=True, slots=True)
class PlantSpec:
    """One planted kind, its gain and its full parameter set (defaults filled in)."""

    kind: str
    gain: float
    params: tuple[tuple[str, float], ...] = ()

    def param(self, name: str) -> float:
        """A parameter's value (the default when not set)."""
        return dict(self.params).get(name, DEFAULTS[self.kind][name])

    def describe(self) -> str:
        """``kind=gain (name=value, ...)`` for logs and reports."""
        ps = ", ".join(f"{k}={self.param(k):g}" for k in DEFAULTS[self.kind])
        return f"{self.kind}={self.gain:g} ({ps})"


def _number(text: str, what: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"{what}: {text!r} is not finite")
    return x


def _kind(name: str, what: str) -> str:
    if name not in DEFAULTS:
        raise ValueError(f"{what}: unknown plant kind {name!r}; known: {', '.join(DEFAULTS)}")
    return name


def parse_plant(text: str) -> tuple[str, float]:
    """``KIND=GAIN`` -> (kind, gain); one-line ValueError on bad input."""
    kind, sep, value = text.partition("=")
    what = f"--plant {text}"
    if not sep:
        raise ValueError(f"{what}: expected KIND=GAIN (e.g. echo=1.0)")
    gain = _number(value, what)
    if not 0.0 <= gain <= MAX_GAIN:
        raise ValueError(f"{what}: gain must be 0 .. {MAX_GAIN:g}")
    return _kind(kind.strip(), what), gain


def parse_plant_param(text: str) -> tuple[str, str, float]:
    """``KIND.NAME=VALUE`` -> (kind, name, value); one-line ValueError on bad input."""
    key, sep, value = text.partition("=")
    kind, dot, name = key.strip().partition(".")
    what = f"--plant-param {text}"
    if not sep or not dot:
        raise ValueError(f"{what}: expected KIND.NAME=VALUE (e.g. echo.tau_ms=300)")
    _kind(kind, what)
    if name not in DEFAULTS[kind]:
        raise ValueError(f"{what}: unknown parameter {name!r} of {kind}; known: {', '.join(DEFAULTS[kind])}")
    x = _number(value, what)
    if name in ("tau_ms", "width") and x <= 0:
        raise ValueError(f"{what}: {name} must be > 0")
    if name == "invalid" and not 0.0 <= x <= 1.0:
        raise ValueError(f"{what}: invalid must be 0 .. 1")
    if name.startswith("f_") and x <= 0:
        raise ValueError(f"{what}: {name} must be > 0")
    return kind, name, x


def parse_plants(plants: Iterable[str], params: Iterable[str] = ()) -> tuple[PlantSpec, ...]:
    """The plants named by ``KIND=GAIN`` texts with their ``KIND.NAME=VALUE`` parameters.

    Raises ValueError (one line) on a malformed text, an unknown kind or parameter, a parameter of a kind not
    planted, a kind given twice, or ``f_lo_mhz >= f_hi_mhz``.
    """
    gains: dict[str, float] = {}
    for text in plants:
        kind, gain = parse_plant(text)
        if kind in gains:
            raise ValueError(f"--plant {text}: {kind} given twice")
        gains[kind] = gain
    values: dict[str, dict[str, float]] = {k: {} for k in gains}
    for text in params:
        kind, name, x = parse_plant_param(text)
        if kind not in gains:
            raise ValueError(f"--plant-param {text}: {kind} is not planted (add --plant {kind}=GAIN)")
        values[kind][name] = x
    out = []
    for kind, gain in gains.items():
        spec = PlantSpec(kind, gain, tuple(sorted(values[kind].items())))
        if spec.param("f_lo_mhz") >= spec.param("f_hi_mhz"):
            raise ValueError(f"plant {kind}: f_lo_mhz must be below f_hi_mhz")
        out.append(spec)
    return tuple(out)


def _leak(trace: F64, value: F64, dt: float, tau_s: float) -> None:
    """In place: exact first-order step of ``trace`` towards ``value`` held for ``dt`` seconds."""
    trace += (value - trace) * (1.0 - math.exp(-dt / tau_s))


class Plants:
    """Runtime state of the planted kinds for ``n`` chips; a no-op when ``specs`` is empty."""

    def __init__(self, specs: Iterable[PlantSpec], n: int) -> None:
        self.specs = {s.kind: s for s in specs}
        self.n = n
        #: echo trace m (normalised clock) and threshold trace q (normalised power), per chip.
        self.m = np.full(n, 0.5)
        self.q = np.zeros(n)

    def __bool__(self) -> bool:
        return bool(self.specs)

    def step(self, dt: float, freq_hz: F64, physics: ChainPhysics) -> None:
        """Advance the traces by ``dt`` s with the clock ``freq_hz`` (0 in reset) held over the step."""
        echo = self.specs.get("echo")
        if echo is not None:
            lo, hi = echo.param("f_lo_mhz") * 1e6, echo.param("f_hi_mhz") * 1e6
            z = np.clip((freq_hz - lo) / (hi - lo), 0.0, 1.0)
            _leak(self.m, z, dt, echo.param("tau_ms") / 1e3)
        thr = self.specs.get("threshold")
        if thr is not None:
            lo, hi = thr.param("f_lo_mhz") * 1e6, thr.param("f_hi_mhz") * 1e6
            z = normalised_power(physics, freq_hz, lo, hi)
            _leak(self.q, np.clip(z, 0.0, 1.0), dt, thr.param("tau_ms") / 1e3)

    def apply(self, rate: F64, p_invalid: F64) -> tuple[F64, F64]:
        """Rates (1/s) and invalid fractions with the planted effects of the current traces."""
        echo = self.specs.get("echo")
        if echo is not None and echo.gain > 0:
            rate = rate * np.maximum(0.0, 1.0 + echo.gain * (self.m - 0.5))
        thr = self.specs.get("threshold")
        if thr is not None and thr.gain > 0:
            s = switch(self.q, thr.param("level"), thr.param("width"))
            inv = thr.param("invalid")
            rate = rate * np.maximum(0.0, 1.0 - thr.gain * s * (1.0 - inv))
            if inv > 0:
                p_invalid = np.minimum(1.0, p_invalid + np.minimum(1.0, thr.gain * s * inv))
        return rate, p_invalid


def switch(q: F64, level: float, width: float) -> F64:
    """Logistic switch ``1 / (1 + exp(-(q - level) / width))`` (0 well below ``level``, 1 well above)."""
    out: F64 = 0.5 * (1.0 + np.tanh((np.asarray(q, dtype=np.float64) - level) / (2.0 * width)))
    return out


def normalised_power(physics: ChainPhysics, freq_hz: F64, lo_hz: float, hi_hz: float) -> F64:
    """Chip power now as a fraction of the way from its value at ``lo_hz`` to ``hi_hz`` (both at the reference
    voltage and each chip's present temperature): 0 .. 1 over the clock range at v_ref, lower undervolted."""
    p, t = physics.params, physics.temp_c
    n = physics.chips
    now = physics.power_w(freq_hz)
    p_lo = chip_power_w(p, p.v_ref_v, np.full(n, lo_hz), t, physics.chip_c_eff, physics.chip_leak)
    p_hi = chip_power_w(p, p.v_ref_v, np.full(n, hi_hz), t, physics.chip_c_eff, physics.chip_leak)
    out: F64 = (now - p_lo) / (p_hi - p_lo)
    return out
