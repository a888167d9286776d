"""A board's sensor loop: read telemetry every ``telemetry_interval_s``, mirror it in the board's state and
the open point windows, and let the safety envelope observe it (an overheat or brown-out trips it).

A failed sensor read does not drop the data link; only :data:`TELEMETRY_FAILURES_MAX` in a row do (no
overheat trip can fire without readings): docs/drivers.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from daemon.board_control import BoardControl, fan_reading
from daemon.events import Pipeline
from daemon.plan_summary import PointAccumulator
from daemon.safety import SafetyEnvelope
from daemon.state import BoardState
from drivers.transport import TransportError

log = logging.getLogger(__name__)

#: Telemetry reads that may fail in a row before the board is treated as lost (reconnect, safe values).
TELEMETRY_FAILURES_MAX = 3


class TelemetryLoop:
    """Runs :meth:`run` for one session; raises :class:`TransportError` after too many failed reads."""

    def __init__(
        self,
        name: str,
        control: BoardControl,
        state: BoardState,
        envelope: SafetyEnvelope,
        pipeline: Pipeline,
        windows: list[PointAccumulator],
        interval_s: float,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.control = control
        self.state = state
        self.envelope = envelope
        self.pipeline = pipeline
        self.windows = windows
        self.interval_s = interval_s
        self.sleep = sleep

    async def run(self) -> None:
        st = self.state
        failures = 0
        while True:
            try:
                t = await self.control.read_telemetry()
            except TransportError as exc:
                # a failed sensor read does not drop the data link; only a run of them does (no overheat trip
                # can fire without readings): docs/drivers.md
                failures += 1
                st.telemetry_errors += 1
                if failures >= TELEMETRY_FAILURES_MAX:
                    raise TransportError(f"{failures} telemetry reads failed in a row: {exc}") from exc
                log.log(logging.WARNING if failures == 1 else logging.DEBUG, "board %s: %s", self.name, exc)
                await self.sleep(self.interval_s)
                continue
            failures = 0
            st.chip_temp_c, st.vr_temp_c, st.power_w, st.vin_v = (
                t.chip_temp_c,
                t.regulator_temp_c,
                t.power_w,
                t.input_voltage_v,
            )
            fan = fan_reading(self.control)
            if fan is not None:
                st.fan_duty, st.fan_rpm = fan.duty, fan.rpm
            for acc in self.windows:
                acc.add_telemetry(t)
            reason = self.envelope.observe(t)
            for w in t.warnings:  # e.g. output current above the regulator's warn limit (docs/daemon.md)
                log.warning("board %s: %s", self.name, w)
                self.pipeline.log(self.name, "safety", {"warning": w, "telemetry": t.as_dict()})
            st.set_trips(self.envelope.trips)
            if reason is not None:
                for acc in self.windows:
                    acc.trips += 1
                log.warning("board %s: %s -> safe state (%s)", self.name, reason, t)
                self.pipeline.log(self.name, "safety", {"trip": reason, "telemetry": t.as_dict()})
            await self.sleep(self.interval_s)
