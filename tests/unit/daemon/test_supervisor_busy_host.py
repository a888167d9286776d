"""A busy host: a late event loop is not a silent board, and a silent board is still found on a late loop.

In-process with a loopback link, an injected clock and injected sleeps: "late" means the clock jumps further
than the control tick asked for, as it does when the process did not get the CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from daemon.board_control import NullControl
from daemon.config import BoardConfig, SafetyLimits, TimingConfig
from daemon.events import Pipeline
from daemon.link_health import HealthError
from daemon.state import BoardState
from daemon.supervisor import BoardSupervisor, _run_all
from drivers.chain import Chain
from drivers.frames import NonceReply
from drivers.transport import LoopbackTransport, loopback_pair

SILENCE_S = 1.0
TICK_S = 0.1
STALL_NS = 5_000_000_000  # five silence timeouts


class _Stop(Exception):
    """Ends a test loop once enough ticks have run."""


class Clock:
    def __init__(self) -> None:
        self.t_ns = 1_000_000_000

    def __call__(self) -> int:
        return self.t_ns


def _sup(clock: Clock, sleep: Callable[[float], Awaitable[None]]) -> BoardSupervisor:
    board = BoardConfig(name="b0", kind="gamma", data_port="/dev/null", chips=1, safety=SafetyLimits())
    sup = BoardSupervisor(
        board,
        TimingConfig(silence_timeout_s=SILENCE_S, control_tick_s=TICK_S),
        Pipeline(clock=clock),
        BoardState("b0", chips=1),
        LoopbackTransport,
        control=NullControl(),
        clock=clock,
        sleep=sleep,
    )
    sup.applied = sup.envelope.safe_output().setpoint
    return sup


async def test_a_late_loop_with_unseen_reads_is_not_declared_lost() -> None:
    """The process stalls for five silence timeouts while the board keeps sending; when it runs again, the
    control loop judges before the stream has taken the waiting reads: no HealthError, the data is kept."""
    clock = Clock()
    host, _dev = loopback_pair(baud=1_000_000)
    calls = 0
    reply = NonceReply(0x1234, 0, 0, 0).encode()

    async def sleep(s: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the stall: the board sent on time, the reads wait for the loop
            for k in range(5):
                host.inject(reply, t_host_ns=clock.t_ns + (k + 1) * STALL_NS // 6)
            clock.t_ns += STALL_NS
            return  # resume the control loop first, before the stream task has run
        if calls > 30:
            raise _Stop
        host.inject(reply, t_host_ns=clock.t_ns)
        clock.t_ns += int(s * 1e9)
        await asyncio.sleep(0)

    sup = _sup(clock, sleep)
    sup._transport = host
    with pytest.raises(_Stop):
        await _run_all(sup.stream(host), sup._control_loop(Chain(host)))
    sup.events.publish()
    assert sup.counters.nonces == 5 + 29  # every reply, the stalled ones included
    assert sup.state.reconnects == 0


async def test_a_silent_board_is_still_found_when_every_tick_is_late() -> None:
    """No byte ever arrives and every tick wakes 0.3 s late: the on-time parts still add up to the timeout."""
    clock = Clock()
    ticks = 0

    async def sleep(s: float) -> None:
        nonlocal ticks
        ticks += 1
        if ticks > 1000:
            raise _Stop
        clock.t_ns += int(s * 1e9) + 300_000_000
        await asyncio.sleep(0)

    host, _dev = loopback_pair(baud=1_000_000)
    sup = _sup(clock, sleep)
    sup._transport = host
    with pytest.raises(HealthError, match="no bytes"):
        await sup._control_loop(Chain(host))
    # silence counted the asked-for ticks only: one timeout's worth of them, not the late wall time
    assert SILENCE_S / TICK_S <= ticks <= SILENCE_S / TICK_S + 2
