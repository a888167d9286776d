"""Regulator faults: STATUS_WORD decoding (ESP-Miner's mask), the emulated TPS546 latching on the power
model's current or on an injected fault, PartsControl naming the fault, and the safety envelope's ``fault``
state (property-tested: after a latch nothing is switched on again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.board_control import PartsControl
from daemon.config import SafetyLimits
from daemon.safety import Mode, Request, SafetyEnvelope, Setpoint, Source, Telemetry
from drivers.frames import write_reg
from drivers.parts.tps546 import FAULT_MASK, latch_fault, status_flags
from simulator.bitaxe_raw import BitaxeRawDevice
from simulator.chain import ChainCore
from simulator.faults import Fault
from simulator.i2c_devices import TPS546D24A
from simulator.power_budget import chain_current_a, max_freq_mhz
from tests.unit.daemon.test_parts_control_startup import DeviceTransport
from tests.unit.daemon.test_safety import LIM, FakeClock, limits

#: 485 MHz (the BM1366 PLL0 value ESP-Miner writes for it; tests/unit/simulator/test_sim_core.py).
PLL_485 = 0x50C20240


@pytest.mark.parametrize(
    ("word", "on", "reason"),
    [
        (0x0000, True, None),
        (0x0040, False, None),  # output off as commanded
        (0x0040, True, "regulator_output_off"),
        (0x4050, True, "regulator_overcurrent"),  # IOUT/POUT + OFF + IOUT_OC: what the emulator latches
        (0x0010, False, "regulator_overcurrent"),  # a latch is a fault whatever the host commanded
        (0x8060, True, "regulator_overvoltage"),
        (0x0004, True, "regulator_overtemp"),
        (0x0014, True, "regulator_overcurrent"),  # precedence: over-current first
        (0x0048, True, None),  # input under-voltage: the brown-out check on READ_VIN decides
        (0x0800, True, None),  # POWER_GOOD# alone (ramping): not in ESP-Miner's mask
        (0x0002, True, None),  # CML: not in ESP-Miner's mask
    ],
)
def test_latch_fault_follows_esp_miners_mask(word: int, on: bool, reason: str | None) -> None:
    assert latch_fault(word, on) == reason


def test_fault_mask_is_esp_miners() -> None:
    # TPS546_check_status: OFF | VOUT_OV | IOUT_OC | VIN_UV | TEMP
    assert FAULT_MASK == 0x007C
    assert status_flags(FAULT_MASK) == ["OFF", "VOUT_OV", "IOUT_OC", "VIN_UV", "TEMPERATURE"]


def _board(chips: int) -> tuple[ChainCore, BitaxeRawDevice, PartsControl]:
    core = ChainCore(chips=chips, seed=0)
    dev = BitaxeRawDevice(core, "gamma")
    return core, dev, PartsControl(lambda: DeviceTransport(dev), "gamma")


async def test_four_chips_at_the_high_point_latch_the_regulator_and_the_control_names_it() -> None:
    core, dev, ctl = _board(4)
    await ctl.connect()
    core.feed(write_reg(0x08, PLL_485).encode(), 0.0)  # every chip to 485 MHz
    core.advance(0.001)
    await ctl.set_core_voltage(1.2)
    vr = dev.devices[0x24]
    assert isinstance(vr, TPS546D24A) and vr.on
    t = await ctl.read_telemetry()
    assert vr.oc_latched and not core.physics.powered  # > IOUT_OC_FAULT 30 A with response 0xC0
    assert t.regulator_fault == "regulator_overcurrent"
    assert t.output_current_a is not None and t.output_current_a > 30.0
    assert t.warnings and "IOUT_OC_WARN 25 A" in t.warnings[0]
    await ctl.set_core_voltage(0.0)  # the safe state: output off (which also clears the part's latch)
    assert (await ctl.read_telemetry()).regulator_fault is None  # off as commanded


async def test_one_chip_runs_without_a_fault_and_an_off_output_is_not_one() -> None:
    core, _dev, ctl = _board(1)
    await ctl.connect()
    assert (await ctl.read_telemetry()).regulator_fault is None  # off after start-up, as commanded
    core.feed(write_reg(0x08, PLL_485).encode(), 0.0)
    await ctl.set_core_voltage(1.2)
    t = await ctl.read_telemetry()
    assert t.regulator_fault is None and t.warnings == ()
    assert t.output_current_a is not None and 5.0 < t.output_current_a < 25.0


async def test_an_injected_latch_is_the_same_named_fault() -> None:
    core, dev, ctl = _board(1)
    await ctl.connect()
    await ctl.set_core_voltage(1.2)
    vr = dev.devices[0x24]
    assert isinstance(vr, TPS546D24A)
    assert Fault.from_dict({"kind": "vr_latch"}).kind == "vr_latch"
    vr.latch(0.0)
    assert not core.physics.powered
    assert (await ctl.read_telemetry()).regulator_fault == "regulator_overcurrent"


async def test_an_output_off_while_commanded_on_is_a_fault_on_the_second_read() -> None:
    core, dev, ctl = _board(1)
    await ctl.connect()
    await ctl.set_core_voltage(1.2)
    vr = dev.devices[0x24]
    assert isinstance(vr, TPS546D24A)
    vr.write(bytes([0x01, 0x00]), 0.0)  # the output goes off without the host's command (no OC, OV or OT)
    assert not core.physics.powered
    assert (await ctl.read_telemetry()).regulator_fault is None  # once may be an output still starting
    assert (await ctl.read_telemetry()).regulator_fault == "regulator_output_off"
    await ctl.set_core_voltage(1.2)  # a new command starts the count again
    vr.write(bytes([0x01, 0x00]), 0.0)
    assert (await ctl.read_telemetry()).regulator_fault is None


async def test_ultra_boards_have_no_status_word_and_no_fault() -> None:
    core = ChainCore(chips=1, seed=0)
    dev = BitaxeRawDevice(core, "ultra")
    ctl = PartsControl(lambda: DeviceTransport(dev), "ultra")
    await ctl.connect()
    t = await ctl.read_telemetry()
    assert t.regulator_fault is None and t.output_current_a is None and t.warnings == ()


def test_the_emulators_current_model_puts_four_chips_at_the_high_point_over_the_fault_limit() -> None:
    assert chain_current_a(4, 1.2, 485.0) > 30.0  # IOUT_OC_FAULT: the latch the system test sees
    assert chain_current_a(1, 1.2, 485.0) < 25.0
    assert chain_current_a(4, 1.1, 300.0) < 0.8 * 25.0  # benchmarks/bench_calibration.py HOLD_4
    f = max_freq_mhz(4, 1.1, 25.0)
    assert f is not None and chain_current_a(4, 1.1, f) < 25.0 <= chain_current_a(4, 1.1, f + 5.0)
    with pytest.raises(ValueError):
        chain_current_a(0, 1.2, 485.0)


def test_the_calibration_bench_holds_four_chips_under_the_warn_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[3] / "benchmarks"))
    import bench_calibration as cal

    assert cal.hold_point(1, 100) == cal.HOLD
    for seed in range(100, 105):  # the seeds the bench uses
        assert cal.hold_point(4, seed) == cal.HOLD_4
    monkeypatch.setattr(cal, "HOLD_4", cal.HOLD)  # 4 chips at the 1-chip point: refused, naming the current
    with pytest.raises(ValueError, match=r"4 chips at .* A, not under the regulator's IOUT_OC_WARN 25.0 A"):
        cal.hold_point(4, 100)


def test_envelope_latch_is_off_held_refusing_and_never_resumes() -> None:
    clock = FakeClock()
    env = SafetyEnvelope(LIM, clock=clock, board="b")
    env.gate(Request(Setpoint(1.2, 485.0, 256.0)))
    assert (
        env.observe(Telemetry(power_w=20.0, regulator_fault="regulator_overcurrent"))
        == "regulator_overcurrent"
    )
    assert env.mode is Mode.FAULT and env.trips["regulator_overcurrent"] == 1
    assert env.status == "fault: regulator_overcurrent"
    for _ in range(100):
        clock.advance(60.0)
        env.observe(Telemetry(chip_temp_c=30.0, input_voltage_v=5.0))  # all well again: still off
        out = env.tick()
        assert out.setpoint.voltage_v == 0.0 and out.hold_reset and out.fan_pct == 100.0 and not out.reinit
    for src in Source:
        assert env.gate(Request(Setpoint(1.2, 485.0, 256.0), src)).applied is None
    env.fault("chain_lost")  # a later board fault does not turn it into a (self-resuming) brown-out
    assert env.mode is Mode.FAULT
    env.shutdown()
    assert env.tick().setpoint.voltage_v == 0.0  # shutting down keeps the output off


words = st.integers(min_value=0, max_value=0xFFFF)
requests = st.builds(
    Setpoint,
    st.floats(min_value=0.0, max_value=2.0),
    st.floats(min_value=0.0, max_value=1500.0),
    st.floats(min_value=0.0, max_value=1e4),
)
steps = st.one_of(
    st.tuples(st.just("status"), words, st.booleans()),
    st.tuples(st.just("request"), requests, st.sampled_from(list(Source))),
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=120.0)),
    st.tuples(st.just("fault"), st.just("chain_lost")),
    st.tuples(st.just("reconnect")),
    st.tuples(st.just("clear_derate")),
)


@given(limits, st.lists(steps, max_size=60))
def test_after_a_latch_no_setpoint_is_written(lim: SafetyLimits, seq: list[tuple[object, ...]]) -> None:
    """Whatever STATUS_WORDs, requests, faults and time steps arrive: once a word decodes to a latch, the
    board stays in the fault state and every output after it is the same: output off, frequency floor,
    reset held; no request is applied."""
    clock = FakeClock()
    env = SafetyEnvelope(lim, clock=clock, board="b")
    latched: Setpoint | None = None
    for step in seq:
        kind = step[0]
        if kind == "status":
            fault = latch_fault(int(step[1]), bool(step[2]))  # type: ignore[call-overload]
            shutting_down = env.mode is Mode.SHUTDOWN  # a daemon stopping already goes to its floor
            reason = env.observe(Telemetry(regulator_fault=fault))
            if latched is None and fault is not None and not shutting_down:
                assert reason == fault and env.mode is Mode.FAULT
        elif kind == "request":
            d = env.gate(Request(step[1], step[2]))  # type: ignore[arg-type]
            if latched is not None:
                assert d.applied is None and d.outcome == "refused"
        elif kind == "advance":
            clock.advance(float(step[1]))  # type: ignore[arg-type]
        elif kind == "fault":
            env.fault("chain_lost")
        elif kind == "reconnect":
            env.reset_output()
        else:
            env.clear_derate()
        out = env.tick()
        if latched is None and env.mode is Mode.FAULT:
            latched = out.setpoint
        if latched is not None:
            assert env.mode is Mode.FAULT
            assert (
                out.setpoint == latched and latched.voltage_v == 0.0 and latched.freq_mhz == lim.freq_min_mhz
            )
            assert out.hold_reset and not out.reinit
