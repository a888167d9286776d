"""No voltage code ever applies more than the voltage asked for: DS4432U trim bytes and TPS546 VOUT words,
as pure functions and through the emulated parts (whose transfer functions are their own code)."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from drivers.parts import TPS546, ds4432u, pmbus
from simulator.i2c_devices import DS4432U as SimDS4432U
from tests.unit.i2c_sim import SimBus

VOLTS = st.floats(1.0, 1.4, allow_nan=False)


@given(VOLTS)
def test_ds4432u_code_never_applies_more(v: float) -> None:
    applied = ds4432u.voltage_for_code(ds4432u.code_for_voltage(v))
    assert applied <= v
    assert v - applied < ds4432u.V_PER_STEP + 1e-12  # and never a whole step low


@given(VOLTS, st.sampled_from([-8, -9, -10, -12]))
def test_vout_word_never_applies_more(v: float, exp: int) -> None:
    word = pmbus.ulinear16_from_float(v, exp)
    assert pmbus.decode_ulinear16(word, exp) <= v < pmbus.decode_ulinear16(word + 1, exp)


def test_the_401_point_grid_has_no_code_above_its_request() -> None:
    # 1.100-1.300 V in 0.5 mV steps: rounding to nearest put 51 of these one DAC step above the request
    grid = [1.1 + i * 0.0005 for i in range(401)]
    assert [v for v in grid if ds4432u.voltage_for_code(ds4432u.code_for_voltage(v)) > v] == []
    assert [v for v in grid if pmbus.ulinear16_from_float(v, -9) / 512 > v] == []


@given(VOLTS)
def test_emulated_ultra_never_runs_above_the_request(v: float) -> None:
    bus = SimBus("ultra")
    bus.devices[0x48].write(bytes([0xF8, ds4432u.code_for_voltage(v)]), 0.0)
    assert bus.core.physics.v_target <= v + 1e-12
    assert SimDS4432U.volts_for(ds4432u.code_for_voltage(v)) <= v + 1e-12


@given(VOLTS)
def test_emulated_tps546_never_runs_above_the_request(v: float) -> None:
    async def run() -> float:
        bus = SimBus("gamma")
        vr = TPS546(bus)
        await vr.configure()
        await vr.set_vout(v)
        return bus.core.physics.v_target

    assert asyncio.run(run()) <= v
