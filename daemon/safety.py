"""The safety envelope: the ONE gate every setpoint passes (plans, commands, faults, start-up).

:class:`SafetyEnvelope` is a small state machine per board, driven by an injected monotonic clock (ns):

- :meth:`SafetyEnvelope.gate` takes a :class:`Request` and returns a :class:`Decision` (applied target,
  ``applied`` | ``clamped`` | ``refused``, reason) and counts clamps and refusals by reason.
- :meth:`SafetyEnvelope.tick` returns the next :class:`Output` to write to the board: the frequency moves
  toward the gated target at no more than ``freq_step_rate_mhz_s`` (a large jump becomes a ramp); going down
  in an emergency is immediate.
- :meth:`SafetyEnvelope.observe` takes telemetry. Chip > limit, regulator > limit or power > limit trips the
  overheat state (fan 100 %, frequency floor, core voltage off or floor, reset held); it resumes after at
  least ``cool_down_s`` and below limit - hysteresis, ``derate`` lower (ESP-Miner: 100 mV, 100 MHz), clamped
  into the envelope. Input voltage outside its range is a brown-out: safe state, and once it has been back
  in range for ``brownout_recover_s`` the board is re-initialised (``Output.reinit``) and resumes.
  A regulator fault latch (``Telemetry.regulator_fault``, e.g. the TPS546 shut its output off on over-current)
  is the ``fault`` state: output off, frequency floor, reset held, every plan/command refused; it never
  resumes by itself (only a daemon restart clears it, docs/daemon.md "Safety behaviour").

Invariant (property-tested): every :class:`Output` has the frequency inside [freq_min, freq_max] and the
core voltage either 0 (off) or inside [core_voltage_min, core_voltage_max]; upward frequency moves never
exceed the step rate. The start-up output (:meth:`SafetyEnvelope.safe_output`) is the floor of everything.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from daemon.config import SafetyLimits
from daemon.safety_types import Decision, Mode, Output, Request, Setpoint, Source, Telemetry

#: Default ticket difficulty written at start-up (ESP-Miner's usual 256: few replies while nothing runs).
SAFE_TICKET_DIFF = 256.0
#: Fan duty in the normal state when nothing else asks (ESP-Miner's overheat response is 100 %).
DEFAULT_FAN_PCT = 100.0


__all__ = [
    "DEFAULT_FAN_PCT",
    "SAFE_TICKET_DIFF",
    "Decision",
    "Mode",
    "Output",
    "Request",
    "SafetyEnvelope",
    "Setpoint",
    "Source",
    "Telemetry",
]


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


class SafetyEnvelope:
    """Per-board gate and overheat/brown-out state machine (see the module docstring).

    ``clock`` returns monotonic nanoseconds. Nothing here does I/O.
    """

    def __init__(
        self, limits: SafetyLimits, *, clock: Callable[[], int] = time.monotonic_ns, board: str = ""
    ) -> None:
        self.limits = limits
        self.board = board
        self._clock = clock
        self.clamps: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.trips: Counter[str] = Counter()
        self.mode = Mode.NORMAL
        floor = self._floor(SAFE_TICKET_DIFF)
        self._target = floor  # gated target (what the ramp moves toward)
        self._out = floor  # last output setpoint
        self._last_tick_ns: int | None = None
        self._tripped_ns = 0
        self._trip_setpoint = floor
        self._vin_ok_since_ns: int | None = None
        self._pending_reinit = False
        self._vmax_cap = limits.core_voltage_max_v
        self._fmax_cap = limits.freq_max_mhz
        self._last_telemetry = Telemetry()
        self.fault_reason: str | None = None

    # ------------------------------------------------------------------ limits

    def _floor(self, ticket_diff: float) -> Setpoint:
        lim = self.limits
        return Setpoint(lim.core_voltage_min_v, lim.freq_min_mhz, ticket_diff)

    def safe_output(self) -> Output:
        """The start-up / shutdown output: voltage and frequency floors, fan 100 %, reset not held."""
        return Output(self._floor(SAFE_TICKET_DIFF), DEFAULT_FAN_PCT, False, self.mode)

    @property
    def target(self) -> Setpoint:
        """The gated target the ramp is moving toward."""
        return self._target

    @property
    def caps(self) -> tuple[float, float]:
        """Current (derated) upper limits: core voltage V, frequency MHz."""
        return self._vmax_cap, self._fmax_cap

    def in_envelope(self, sp: Setpoint) -> bool:
        """True when ``sp`` is inside the configured limits (voltage 0 = off is allowed)."""
        lim = self.limits
        v_ok = sp.voltage_v == 0.0 or lim.core_voltage_min_v <= sp.voltage_v <= lim.core_voltage_max_v
        return v_ok and lim.freq_min_mhz <= sp.freq_mhz <= lim.freq_max_mhz and sp.ticket_diff >= 1.0

    # ------------------------------------------------------------------ the gate

    def gate(self, request: Request) -> Decision:
        """Clamp or refuse ``request``; an accepted target becomes the ramp's new goal."""
        sp = request.setpoint
        if not all(math.isfinite(x) for x in (sp.voltage_v, sp.freq_mhz, sp.ticket_diff)):
            return self._refuse("not_finite")
        if self.mode is Mode.SHUTDOWN and request.source is not Source.SHUTDOWN:
            return self._refuse("shutdown")
        if self.mode is Mode.FAULT:  # a latched regulator: nothing switches it on again (module docstring)
            return self._refuse("fault")
        if self.mode is not Mode.NORMAL and request.source in (Source.PLAN, Source.COMMAND):
            # remember nothing: plans re-request after resume; the refusal is counted and logged
            return self._refuse(str(self.mode))
        if sp.ticket_diff < 1.0:
            return self._refuse("ticket_diff_below_1")
        lim = self.limits
        reasons: list[str] = []
        v = sp.voltage_v
        if v == 0.0 and request.source not in (Source.FAULT, Source.SHUTDOWN):
            return self._refuse("voltage_off_not_allowed")
        if v != 0.0:
            if v < lim.core_voltage_min_v:
                v = lim.core_voltage_min_v
                reasons.append("voltage_below_min")
            elif v > lim.core_voltage_max_v:
                v = lim.core_voltage_max_v
                reasons.append("voltage_above_max")
            if v > self._vmax_cap:
                v = max(self._vmax_cap, lim.core_voltage_min_v)
                reasons.append("voltage_derated")
        f = sp.freq_mhz
        if f < lim.freq_min_mhz:
            f = lim.freq_min_mhz
            reasons.append("freq_below_min")
        elif f > lim.freq_max_mhz:
            f = lim.freq_max_mhz
            reasons.append("freq_above_max")
        if f > self._fmax_cap:
            f = max(self._fmax_cap, lim.freq_min_mhz)
            reasons.append("freq_derated")
        applied = Setpoint(v, f, sp.ticket_diff)
        self._target = applied
        if request.source is Source.SHUTDOWN:
            self.mode = Mode.SHUTDOWN
        if reasons:
            for r in reasons:
                self.clamps[r] += 1
            return Decision(applied, "clamped", ",".join(reasons))
        return Decision(applied, "applied")

    def _refuse(self, reason: str) -> Decision:
        self.refusals[reason] += 1
        return Decision(None, "refused", reason)

    def shutdown(self) -> Decision:
        """Go to the safe floor (immediately at the next tick) and refuse everything after."""
        off = self.mode is Mode.FAULT or self._target.voltage_v == 0.0
        self.mode = Mode.SHUTDOWN
        floor = self._floor(self._target.ticket_diff)
        self._target = replace(floor, voltage_v=0.0) if off else floor  # an output that is off stays off
        self._out = self._target
        return Decision(self._target, "applied", "shutdown")

    @property
    def status(self) -> str:
        """Board status text for a tripped envelope: ``overheat``, ``fault: <reason>``, ``stopped`` after
        :meth:`shutdown` (a control tick racing the shutdown must not make it ``safe`` again) or ``safe``."""
        if self.mode is Mode.SHUTDOWN:
            return "stopped"
        if self.mode is Mode.FAULT:
            return f"fault: {self.fault_reason}"
        return "overheat" if self.mode is Mode.OVERHEAT else "safe"

    def clear_derate(self) -> None:
        """Lift the post-overheat caps (an explicit operator command)."""
        self._vmax_cap = self.limits.core_voltage_max_v
        self._fmax_cap = self.limits.freq_max_mhz

    # ------------------------------------------------------------------ telemetry and faults

    def observe(self, t: Telemetry) -> str | None:
        """Feed a telemetry reading; returns the trip reason when this reading tripped the board."""
        self._last_telemetry = t
        now = self._clock()
        lim = self.limits
        reason = None
        if t.chip_temp_c is not None and t.chip_temp_c > lim.chip_temp_max_c:
            reason = "chip_overheat"
        elif t.regulator_temp_c is not None and t.regulator_temp_c > lim.regulator_temp_max_c:
            reason = "regulator_overheat"
        elif t.power_w is not None and t.power_w > lim.power_max_w:
            reason = "overpower"
        vin_bad = t.input_voltage_v is not None and not (
            lim.input_voltage_min_v <= t.input_voltage_v <= lim.input_voltage_max_v
        )
        if self.mode in (Mode.SHUTDOWN, Mode.FAULT):
            return None
        if t.regulator_fault is not None:
            self.latch(t.regulator_fault)
            return t.regulator_fault
        if vin_bad:
            self._vin_ok_since_ns = None
            if self.mode is not Mode.BROWNOUT:
                self._enter(Mode.BROWNOUT, now)
                self.trips["brownout"] += 1
                return "brownout"
            return None
        if self.mode is Mode.BROWNOUT and self._vin_ok_since_ns is None:
            self._vin_ok_since_ns = now
        if reason is not None and self.mode is not Mode.OVERHEAT:
            self._enter(Mode.OVERHEAT, now)
            self.trips[reason] += 1
            return reason
        return None

    def fault(self, reason: str) -> None:
        """A fault reported by the board itself (e.g. the chain vanished): treat as a brown-out."""
        if self.mode in (Mode.SHUTDOWN, Mode.FAULT):
            return
        self.trips[reason] += 1
        self._enter(Mode.BROWNOUT, self._clock())
        self._vin_ok_since_ns = self._clock()

    def latch(self, reason: str) -> None:
        """A latched regulator fault: output off, reset held, everything refused, no resume (module doc)."""
        if self.mode in (Mode.SHUTDOWN, Mode.FAULT):
            return
        self.trips[reason] += 1
        self.fault_reason = reason
        self._enter(Mode.FAULT, self._clock())

    def _cool_ns(self) -> int:
        return int(self.limits.cool_down_s * 1e9)

    def _enter(self, mode: Mode, now: int) -> None:
        if self.mode is Mode.NORMAL:
            self._trip_setpoint = self._target
        self.mode = mode
        self._tripped_ns = now
        lim = self.limits
        off = mode is Mode.FAULT or (mode is Mode.OVERHEAT and lim.overheat_voltage_off)
        v = 0.0 if off else lim.core_voltage_min_v
        self._target = Setpoint(v, lim.freq_min_mhz, self._target.ticket_diff)
        self._out = self._target  # emergency: straight down, no ramp

    def _try_resume(self, now: int) -> None:
        lim = self.limits
        t = self._last_telemetry
        if self.mode is Mode.OVERHEAT:
            if now - self._tripped_ns < self._cool_ns():
                return
            if t.chip_temp_c is not None and t.chip_temp_c > lim.chip_temp_max_c - lim.hysteresis_c:
                return
            reg_resume_c = lim.regulator_temp_max_c - lim.hysteresis_c
            if t.regulator_temp_c is not None and t.regulator_temp_c > reg_resume_c:
                return
            if t.power_w is not None and t.power_w > lim.power_max_w:
                return
            prev = self._trip_setpoint
            self._vmax_cap = _clamp(
                min(self._vmax_cap, prev.voltage_v - lim.derate_voltage_v),
                lim.core_voltage_min_v,
                lim.core_voltage_max_v,
            )
            self._fmax_cap = _clamp(
                min(self._fmax_cap, prev.freq_mhz - lim.derate_freq_mhz), lim.freq_min_mhz, lim.freq_max_mhz
            )
            self.mode = Mode.NORMAL
            self._pending_reinit = True  # the reset line was held: bring the chain up again
            self.gate(Request(Setpoint(self._vmax_cap, self._fmax_cap, prev.ticket_diff), Source.FAULT))
        elif self.mode is Mode.BROWNOUT:
            ok = self._vin_ok_since_ns
            if ok is None or now - ok < int(lim.brownout_recover_s * 1e9):
                return
            self.mode = Mode.NORMAL
            self._pending_reinit = True
            self.gate(Request(self._trip_setpoint, Source.FAULT))

    # ------------------------------------------------------------------ output

    def tick(self) -> Output:
        """The setpoint to write now: frequency ramps toward the target at the step rate."""
        now = self._clock()
        if self.mode in (Mode.OVERHEAT, Mode.BROWNOUT):
            self._try_resume(now)
        dt_s = 0.0 if self._last_tick_ns is None else max(0.0, (now - self._last_tick_ns) / 1e9)
        self._last_tick_ns = now
        lim = self.limits
        tgt = self._target
        cur = self._out
        f = cur.freq_mhz
        if tgt.freq_mhz > f:
            f = min(tgt.freq_mhz, f + lim.freq_step_rate_mhz_s * dt_s)
        elif tgt.freq_mhz < f:
            # downward moves are ramped too in normal operation (ESP-Miner ramps both ways)
            step = lim.freq_step_rate_mhz_s * dt_s if self.mode is Mode.NORMAL else math.inf
            f = max(tgt.freq_mhz, f - step)
        f = _clamp(f, lim.freq_min_mhz, lim.freq_max_mhz)
        v = tgt.voltage_v
        if v != 0.0:
            v = _clamp(v, lim.core_voltage_min_v, lim.core_voltage_max_v)
        self._out = Setpoint(v, f, tgt.ticket_diff)
        tripped = self.mode in (Mode.OVERHEAT, Mode.BROWNOUT, Mode.FAULT)
        fan = 100.0 if tripped or self.mode is Mode.SHUTDOWN else DEFAULT_FAN_PCT
        reinit, self._pending_reinit = self._pending_reinit, False
        hold = self.mode in (Mode.OVERHEAT, Mode.FAULT)
        return Output(self._out, fan, hold, self.mode, reinit)

    def reset_output(self) -> None:
        """After a reconnect the board is at its reset state: ramp again from the floor."""
        self._out = replace(self._floor(self._target.ticket_diff), voltage_v=self._out.voltage_v)
