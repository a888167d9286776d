"""Shutdown against writes already in flight and reconnects in progress (the floors are the last word)."""

from __future__ import annotations

import asyncio

from daemon.safety import Setpoint
from tests.unit.daemon.test_supervisor import FakeControl, _chain, make_sup


async def _spin(n: int = 50) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_shutdown_floors_land_after_a_control_loop_write_already_in_flight() -> None:
    sup, _, ctl = make_sup()
    forever = asyncio.Event()

    async def sleep(_s: float) -> None:  # the app cancels the supervisor at its next await after shutdown
        await forever.wait()

    sup.sleep = sleep
    chain, _dev = await _chain()
    gate = asyncio.Event()
    record = FakeControl.set_core_voltage

    async def slow_voltage(volts: float) -> None:  # the regulator answers late to the 1.2 V write
        if volts == 1.2:
            await gate.wait()
        await record(ctl, volts)

    ctl.set_core_voltage = slow_voltage  # type: ignore[method-assign]
    sup._chain, sup.connected, sup._transport = chain, True, None
    sup._up.set()
    sup.applied = Setpoint(1.15, 400.0, 1.0)
    sup.request(Setpoint(1.2, 485.0, 1.0), 1)
    loop = asyncio.create_task(sup._control_loop(chain))
    await _spin()
    assert not ctl.voltages  # the control loop is inside its 1.2 V write
    stop = asyncio.create_task(sup.shutdown())
    await _spin()
    gate.set()  # the late 1.2 V write completes after the shutdown began
    await asyncio.wait_for(stop, 5.0)
    await _spin()
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    floor = sup.envelope.safe_output().setpoint
    assert ctl.voltages[-1] == floor.voltage_v  # the floor was written last, after the 1.2 V
    assert (sup.state.voltage_v, sup.state.freq_mhz) == (floor.voltage_v, floor.freq_mhz)


async def test_shutdown_waits_for_a_reconnect_in_progress_then_writes_the_floors() -> None:
    sup, _, ctl = make_sup()
    chain, _dev = await _chain()
    sup.applied = Setpoint(1.2, 485.0, 1.0)
    sup.state.set_setpoint(1.2, 485.0, 1.0)
    sup._transport = _dev  # a session existed; the link is down and re-initialising
    sup.connected = False
    stop = asyncio.create_task(sup.shutdown(wait_link_s=5.0))
    await _spin()
    assert not stop.done()  # waiting for the bring-up, not returning with the board at 1.2 V
    sup._chain, sup.connected = chain, True
    sup._up.set()
    await asyncio.wait_for(stop, 5.0)
    floor = sup.envelope.safe_output().setpoint
    assert ctl.voltages[-1] == floor.voltage_v
    assert (sup.state.voltage_v, sup.state.freq_mhz) == (floor.voltage_v, floor.freq_mhz)


async def test_shutdown_of_a_board_that_never_comes_back_returns_after_the_wait() -> None:
    sup, _, ctl = make_sup()
    sup._transport, sup.connected = object(), False  # type: ignore[assignment]
    await asyncio.wait_for(sup.shutdown(wait_link_s=0.01), 5.0)
    assert ctl.voltages == []  # nothing reachable to write
    assert sup.state.status == "stopped"
