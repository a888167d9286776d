"""Write a safety envelope's output to the board: fan, reset line, core voltage, PLL, ticket mask.

Only the supervisor's control loop (and its start-up and shutdown) call :meth:`SetpointWriter.apply`, with
what :meth:`daemon.safety.SafetyEnvelope.tick` returned; only what changed is written. Every write is logged
to the pipeline and mirrored in the board's :class:`daemon.state.BoardState`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from daemon.board_control import BoardControl
from daemon.events import Pipeline
from daemon.safety import Output, Setpoint
from daemon.state import BoardState
from drivers import chipmath
from drivers.chain import Chain


@functools.lru_cache(maxsize=4096)
def writable_freq(freq_mhz: float, floor_mhz: float) -> float:
    """The reachable PLL frequency to write for ``freq_mhz``: the nearest at or below it (never above the
    envelope's output), or the nearest above ``floor_mhz`` when nothing below is reachable."""
    below, above = chipmath.nearest_reachable(freq_mhz)
    if below is not None and below >= floor_mhz - 1e-9:
        return below
    if above is not None:
        return above
    return freq_mhz  # pragma: no cover - outside every PLL setting


class SetpointWriter:
    """What the board has now (``applied``, ``fan``, ``held``) and the writes that change it.

    ``point``: the plan point the current request serves (set by the supervisor's gate). ``on_freq_written``
    is called with (point, t_ns, freq_mhz) as soon as each PLL write has left the host (``t_ns`` from
    ``clock``, taken when the transport write returned): when a setpoint really took effect.
    """

    def __init__(
        self,
        name: str,
        control: BoardControl,
        pipeline: Pipeline,
        state: BoardState,
        freq_floor_mhz: float,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.name = name
        self.control = control
        self.pipeline = pipeline
        self.state = state
        self.freq_floor_mhz = freq_floor_mhz
        self.clock = clock
        self.applied: Setpoint | None = None  # what the board has now (None: unknown, after a reconnect)
        self.fan: float | None = None
        self.held = False
        self.point = -1
        self.on_freq_written: Callable[[int, int, float], None] | None = None

    async def start(self, out: Output) -> None:
        """Start-up: safe values before anything else (fan, core voltage at its floor); chip state unknown."""
        self.applied = None
        await self.control.connect()
        await self.control.set_fan(out.fan_pct)
        await self.control.set_core_voltage(out.setpoint.voltage_v)
        self.fan = out.fan_pct
        self.held = False

    def is_held(self) -> bool:
        """True while the chips are held in reset (no jobs, no silence check)."""
        return self.held

    def brought_up(self, voltage_v: float, chain: Chain) -> None:
        """The chain is up at its bring-up frequency and ticket difficulty."""
        self.applied = Setpoint(voltage_v, chain.freq_mhz, float(chain.ticket_difficulty))
        self.state.set_setpoint(self.applied.voltage_v, self.applied.freq_mhz, self.applied.ticket_diff)

    async def apply(self, chain: Chain, out: Output) -> None:
        """Write ``out`` to the board: fan, reset line, core voltage, PLL, ticket mask (only what changed)."""
        prev = self.applied
        sp = out.setpoint
        if out.fan_pct != self.fan:
            await self.control.set_fan(out.fan_pct)
            self.fan = out.fan_pct
        freq = prev.freq_mhz if prev is not None else chain.freq_mhz
        if not self.held:
            # the chip is alive: PLL (down first in an emergency) and ticket mask
            want = writable_freq(sp.freq_mhz, self.freq_floor_mhz)
            if want != chain.freq_mhz:
                point = self.point  # the request this write serves (a new one may arrive during the write)
                freq = await chain.set_frequency(want, ramp=False)
                if self.on_freq_written is not None:
                    self.on_freq_written(point, self.clock(), freq)
            else:
                freq = want
            ticket = max(1, int(sp.ticket_diff))
            if ticket != chain.ticket_difficulty:
                await chain.set_ticket_difficulty(ticket)
        if prev is None or sp.voltage_v != prev.voltage_v:
            await self.control.set_core_voltage(sp.voltage_v)
        line = self.control.reset_line
        if out.hold_reset != self.held:
            if line is not None and line.has_reset:
                await line.set_reset(out.hold_reset)
            self.held = out.hold_reset
        new = Setpoint(sp.voltage_v, freq, float(chain.ticket_difficulty))
        if new != prev:
            self.applied = new
            self.state.set_setpoint(new.voltage_v, new.freq_mhz, new.ticket_diff)
            self.pipeline.log(
                self.name, "setpoint", {**new.as_dict(), "mode": str(out.mode), "point": self.point}
            )
