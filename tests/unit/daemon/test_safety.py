"""The safety envelope: gate, ramp, overheat and brown-out state machine; property tests of the invariant."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.config import SafetyLimits
from daemon.safety import Mode, Output, Request, SafetyEnvelope, Setpoint, Source, Telemetry

LIM = SafetyLimits(cool_down_s=30.0, hysteresis_c=5.0, freq_step_rate_mhz_s=62.5)


@dataclass
class FakeClock:
    t_ns: int = 0

    def __call__(self) -> int:
        return self.t_ns

    def advance(self, s: float) -> None:
        self.t_ns += int(s * 1e9)


@dataclass
class RecordingBoard:
    """Records every output written to it (what the chip and regulator would see)."""

    writes: list[tuple[int, Output]] = field(default_factory=list)

    def apply(self, t_ns: int, out: Output) -> None:
        self.writes.append((t_ns, out))


def make(lim: SafetyLimits = LIM) -> tuple[SafetyEnvelope, FakeClock]:
    clock = FakeClock()
    return SafetyEnvelope(lim, clock=clock, board="b"), clock


def run_ticks(env: SafetyEnvelope, clock: FakeClock, seconds: float, dt: float = 0.1) -> list[Output]:
    outs = []
    for _ in range(round(seconds / dt)):
        clock.advance(dt)
        outs.append(env.tick())
    return outs


def test_startup_output_is_the_floor() -> None:
    env, _ = make()
    out = env.safe_output()
    assert out.setpoint.voltage_v == LIM.core_voltage_min_v
    assert out.setpoint.freq_mhz == LIM.freq_min_mhz
    assert env.tick().setpoint == out.setpoint


def test_gate_clamps_and_counts_by_reason() -> None:
    env, _ = make()
    d = env.gate(Request(Setpoint(1.5, 900.0, 256.0)))
    assert d.outcome == "clamped"
    assert d.applied == Setpoint(LIM.core_voltage_max_v, LIM.freq_max_mhz, 256.0)
    assert env.clamps["voltage_above_max"] == 1 and env.clamps["freq_above_max"] == 1
    d = env.gate(Request(Setpoint(1.2, 485.0, 256.0)))
    assert d.outcome == "applied" and d.applied == Setpoint(1.2, 485.0, 256.0)


def test_gate_refuses_and_counts() -> None:
    env, _ = make()
    assert env.gate(Request(Setpoint(float("nan"), 400.0, 1.0))).outcome == "refused"
    assert env.gate(Request(Setpoint(0.0, 400.0, 1.0), Source.COMMAND)).outcome == "refused"
    assert env.gate(Request(Setpoint(1.2, 400.0, 0.5))).outcome == "refused"
    assert env.refusals == {"not_finite": 1, "voltage_off_not_allowed": 1, "ticket_diff_below_1": 1}


def test_large_jump_becomes_a_ramp() -> None:
    env, clock = make()
    env.gate(Request(Setpoint(1.2, 485.0, 256.0)))
    env.tick()
    outs = run_ticks(env, clock, 10.0)
    freqs = [o.setpoint.freq_mhz for o in outs]
    steps = [b - a for a, b in zip([50.0, *freqs], freqs)]
    assert max(steps) <= LIM.freq_step_rate_mhz_s * 0.1 + 1e-9
    assert freqs[-1] == 485.0
    # (485 - 50) / 62.5 MHz/s = 6.96 s to get there
    first_at_target = next(i for i, f in enumerate(freqs) if f == 485.0)
    assert 68 <= first_at_target <= 70


def _ramp_to(env: SafetyEnvelope, clock: FakeClock, sp: Setpoint) -> None:
    env.gate(Request(sp))
    env.tick()
    run_ticks(env, clock, 20.0)
    assert env.tick().setpoint == sp


def test_overheat_goes_safe_cools_and_resumes_lower() -> None:
    env, clock = make()
    _ramp_to(env, clock, Setpoint(1.25, 500.0, 256.0))
    assert env.observe(Telemetry(chip_temp_c=70.0)) == "chip_overheat"
    out = env.tick()
    assert out.mode is Mode.OVERHEAT
    assert out.setpoint.freq_mhz == LIM.freq_min_mhz  # immediately, not ramped
    assert out.setpoint.voltage_v == 0.0  # off (ESP-Miner)
    assert out.fan_pct == 100.0 and out.hold_reset
    # requests are refused while tripped
    assert env.gate(Request(Setpoint(1.2, 485.0, 256.0))).outcome == "refused"
    # cooled below the limit but inside the hysteresis band: still tripped after the cool-down
    env.observe(Telemetry(chip_temp_c=63.0))
    run_ticks(env, clock, 31.0)
    assert env.tick().mode is Mode.OVERHEAT
    # below limit - hysteresis: resume, re-initialise, 100 mV / 100 MHz lower
    env.observe(Telemetry(chip_temp_c=60.0))
    clock.advance(0.1)
    out = env.tick()
    assert out.mode is Mode.NORMAL and out.reinit and not out.hold_reset
    assert env.target.voltage_v == pytest.approx(1.15)
    assert (env.target.freq_mhz, env.target.ticket_diff) == (400.0, 256.0)
    # the derate persists: a plan asking for more is clamped
    d = env.gate(Request(Setpoint(1.3, 575.0, 256.0)))
    assert d.outcome == "clamped" and d.applied is not None
    assert d.applied.freq_mhz == 400.0 and d.applied.voltage_v == pytest.approx(1.15)
    env.clear_derate()
    assert env.gate(Request(Setpoint(1.3, 575.0, 256.0))).outcome == "applied"


def test_overheat_needs_the_full_cool_down() -> None:
    env, clock = make()
    _ramp_to(env, clock, Setpoint(1.2, 485.0, 256.0))
    env.observe(Telemetry(regulator_temp_c=90.0))
    env.observe(Telemetry(regulator_temp_c=20.0))
    run_ticks(env, clock, 29.0)
    assert env.tick().mode is Mode.OVERHEAT
    run_ticks(env, clock, 1.5)
    assert env.mode is Mode.NORMAL


def test_derate_clamped_into_the_envelope() -> None:
    env, clock = make()
    _ramp_to(env, clock, Setpoint(1.15, 120.0, 256.0))
    env.observe(Telemetry(power_w=100.0))
    env.observe(Telemetry(power_w=10.0))
    run_ticks(env, clock, 31.0)
    vcap, fcap = env.caps
    assert vcap == LIM.core_voltage_min_v and fcap == LIM.freq_min_mhz
    assert env.in_envelope(env.tick().setpoint)


def test_brownout_goes_safe_then_reinitialises() -> None:
    env, clock = make()
    _ramp_to(env, clock, Setpoint(1.2, 485.0, 256.0))
    assert env.observe(Telemetry(input_voltage_v=4.2)) == "brownout"
    out = env.tick()
    assert out.mode is Mode.BROWNOUT and out.setpoint.freq_mhz == LIM.freq_min_mhz
    assert out.setpoint.voltage_v == LIM.core_voltage_min_v
    env.observe(Telemetry(input_voltage_v=5.0))
    run_ticks(env, clock, 1.0)
    assert env.tick().mode is Mode.BROWNOUT  # needs brownout_recover_s in range
    outs = run_ticks(env, clock, 1.5)
    assert any(o.reinit for o in outs)
    assert outs[-1].mode is Mode.NORMAL
    assert env.target == Setpoint(1.2, 485.0, 256.0)  # resumes where it was, no derate


def test_shutdown_floors_and_refuses_everything_after() -> None:
    env, clock = make()
    _ramp_to(env, clock, Setpoint(1.2, 485.0, 256.0))
    env.shutdown()
    out = env.tick()
    assert out.setpoint.freq_mhz == LIM.freq_min_mhz and out.setpoint.voltage_v == LIM.core_voltage_min_v
    assert env.gate(Request(Setpoint(1.2, 485.0, 256.0), Source.COMMAND)).outcome == "refused"
    assert env.observe(Telemetry(chip_temp_c=99.0)) is None


# ---------------------------------------------------------------------------------------------- properties

finite = st.floats(min_value=-10.0, max_value=2000.0) | st.sampled_from([float("nan"), float("inf"), 0.0])
setpoints = st.builds(Setpoint, finite, finite, st.floats(min_value=0.0, max_value=1e6))
temps = st.none() | st.floats(min_value=-20.0, max_value=150.0)
actions = st.one_of(
    st.tuples(st.just("request"), setpoints, st.sampled_from(list(Source))),
    st.tuples(st.just("telemetry"), st.builds(Telemetry, temps, temps, temps, temps)),
    st.tuples(st.just("fault"), st.sampled_from(["eio", "chain_lost"])),
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=40.0)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("reconnect")),
    st.tuples(st.just("clear_derate")),
)
limits = st.builds(
    SafetyLimits,
    core_voltage_min_v=st.floats(1.0, 1.2),
    core_voltage_max_v=st.floats(1.2, 1.4),
    freq_min_mhz=st.floats(50.0, 300.0),
    freq_max_mhz=st.floats(300.0, 1200.0),
    freq_step_rate_mhz_s=st.floats(0.1, 1000.0),
    cool_down_s=st.floats(0.0, 60.0),
    overheat_voltage_off=st.booleans(),
)


@given(limits, st.lists(actions, max_size=60))
def test_no_sequence_leaves_the_envelope(lim: SafetyLimits, seq: list[tuple[object, ...]]) -> None:
    """Whatever plans, commands, faults and readings arrive, the board only ever sees in-envelope values,
    and the frequency never rises faster than the step rate."""
    env, clock = make(lim)
    board = RecordingBoard()
    board.apply(clock(), env.safe_output())
    for act in seq:
        kind = act[0]
        if kind == "request":
            env.gate(Request(act[1], act[2]))  # type: ignore[arg-type]
        elif kind == "telemetry":
            env.observe(act[1])  # type: ignore[arg-type]
        elif kind == "fault":
            env.fault(str(act[1]))
        elif kind == "advance":
            clock.advance(float(act[1]))  # type: ignore[arg-type]
        elif kind == "reconnect":
            env.reset_output()
        elif kind == "clear_derate":
            env.clear_derate()
        board.apply(clock(), env.tick())
    prev_t, prev = board.writes[0]
    for t, out in board.writes:
        sp = out.setpoint
        assert env.in_envelope(sp), sp
        assert sp.voltage_v == 0.0 or lim.core_voltage_min_v <= sp.voltage_v <= lim.core_voltage_max_v
        assert lim.freq_min_mhz <= sp.freq_mhz <= lim.freq_max_mhz
        rise = sp.freq_mhz - prev.setpoint.freq_mhz
        assert rise <= lim.freq_step_rate_mhz_s * (t - prev_t) / 1e9 + 1e-6
        if out.mode is Mode.OVERHEAT:
            assert sp.freq_mhz == lim.freq_min_mhz and out.fan_pct == 100.0 and out.hold_reset
        prev_t, prev = t, out
