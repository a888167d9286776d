"""The safety envelope's value types: who asks (:class:`Source`), the envelope's state (:class:`Mode`), a
setpoint, a request and the gate's decision, the output written to the board and the telemetry it observes
(:mod:`daemon.safety`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Source(enum.StrEnum):
    """Where a setpoint request comes from (counters and logs use these names)."""

    STARTUP = "startup"
    PLAN = "plan"
    COMMAND = "command"
    FAULT = "fault"
    SHUTDOWN = "shutdown"


class Mode(enum.StrEnum):
    """Envelope state."""

    NORMAL = "normal"
    OVERHEAT = "overheat"
    BROWNOUT = "brownout"
    SHUTDOWN = "shutdown"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class Setpoint:
    """Core voltage (V; 0 = off), hash clock (MHz), ticket difficulty."""

    voltage_v: float
    freq_mhz: float
    ticket_diff: float

    def as_dict(self) -> dict[str, float]:
        return {"voltage_v": self.voltage_v, "freq_mhz": self.freq_mhz, "ticket_diff": self.ticket_diff}

    def close_to(self, other: Setpoint) -> bool:
        """Equal up to float noise of the frequency ramp."""
        return (
            abs(self.freq_mhz - other.freq_mhz) < 1e-6
            and self.voltage_v == other.voltage_v
            and self.ticket_diff == other.ticket_diff
        )


@dataclass(frozen=True, slots=True)
class Request:
    """A setpoint someone wants applied."""

    setpoint: Setpoint
    source: Source = Source.PLAN


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of :meth:`SafetyEnvelope.gate`: ``outcome`` is applied, clamped or refused."""

    applied: Setpoint | None
    outcome: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Output:
    """What the supervisor writes to the board now. ``hold_reset``: keep the ASIC in reset."""

    setpoint: Setpoint
    fan_pct: float
    hold_reset: bool
    mode: Mode
    reinit: bool = False


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One telemetry reading (None = not measured). Units: C, W, V, A.

    ``regulator_fault``: a latched regulator fault the board reports (a reason name such as
    ``regulator_overcurrent``); ``warnings``: one-line notices to log once (e.g. output current above the
    regulator's warn limit), not safety inputs.
    """

    chip_temp_c: float | None = None
    regulator_temp_c: float | None = None
    power_w: float | None = None
    input_voltage_v: float | None = None
    output_current_a: float | None = None
    regulator_fault: str | None = None
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, float | None]:
        d = {
            "chip_temp_c": self.chip_temp_c,
            "regulator_temp_c": self.regulator_temp_c,
            "power_w": self.power_w,
            "input_voltage_v": self.input_voltage_v,
        }
        if self.output_current_a is not None:
            d["output_current_a"] = self.output_current_a
        return d

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in self.as_dict().items() if v is not None)
