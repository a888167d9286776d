"""Board supervisor: one per board, the board's session. Open, bring up, then run together the read stream,
the control loop, the job feed and the telemetry loop; on any link failure reconnect (through
:class:`drivers.transport.Reconnector`, the one place that reconnects), re-initialise to safe values and carry
on recording.

Every setpoint reaches the board through :class:`daemon.safety.SafetyEnvelope`: plans call
:meth:`BoardSupervisor.request` (the gate), and only the control loop writes what :meth:`SafetyEnvelope.tick`
returns (:class:`daemon.setpoint_writer.SetpointWriter`). Start-up writes the envelope's safe output before
anything else.

After bring-up the chain's reader is stopped and the supervisor reads the transport itself: each read is kept
by :class:`daemon.event_publisher.EventPublisher` with the setpoint in force, decoded and published as one
Arrow batch per ``batch_interval_s`` (docs/recording-format.md). Link health (silence, CRC storms) is
:class:`daemon.link_health.LinkHealth`; sensors are :class:`daemon.telemetry_loop.TelemetryLoop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from daemon.board_control import BoardControl, NullControl
from daemon.bringup import STAGE_CHAIN, STAGE_CONTROL, STAGE_OPEN, BringUpWatch
from daemon.config import BoardConfig, TimingConfig
from daemon.event_publisher import EventPublisher, LinkCounters
from daemon.events import Pipeline
from daemon.jobs import JobSource, feed_jobs
from daemon.link_health import HealthError, LinkHealth
from daemon.plan_summary import PointAccumulator, PointSummary
from daemon.safety import Decision, Mode, Request, SafetyEnvelope, Setpoint, Source
from daemon.setpoint_writer import SetpointWriter, writable_freq
from daemon.state import BoardState, PlanProgress
from daemon.telemetry_loop import TelemetryLoop
from drivers import chipmath
from drivers.chain import Chain, ChainError, ChainTiming
from drivers.frames import read_reg
from drivers.i2c import I2CError
from drivers.transport import Backoff, LinkState, Reconnector, Transport, TransportError

log = logging.getLogger(__name__)

#: Chip-id register, read as a liveness probe when the link has been quiet for half the silence timeout.
REG_CHIP_ID = 0x00

Sleep = Callable[[float], Awaitable[None]]

__all__ = ["BoardSupervisor", "HealthError", "LinkCounters", "writable_freq"]


class _Reinit(Exception):
    """The safety envelope asks for a fresh bring-up (after an overheat or a brown-out)."""


class BoardSupervisor:
    """Keeps one board running (see the module docstring). Implements :class:`daemon.plans.PlanTarget`.

    ``valid_scale``: a nonce is valid when its share difficulty >= ticket difficulty * ``valid_scale`` (the
    emulator's difficulty scale; 1 on hardware). ``nonce_scale``: expected-rate multiplier for summaries.
    """

    def __init__(
        self,
        board: BoardConfig,
        timing: TimingConfig,
        pipeline: Pipeline,
        state: BoardState,
        transport_factory: Callable[[], Transport],
        *,
        control: BoardControl | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        sleep: Sleep = asyncio.sleep,
        chain_timing: ChainTiming | None = None,
        valid_scale: float = 1.0,
        nonce_scale: float = 1.0,
        seed: int = 0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.board = board
        self.name = board.name
        self.chips = board.chips
        self.timing = timing
        self.pipeline = pipeline
        self.state = state
        self.factory = transport_factory
        self.control: BoardControl = control if control is not None else NullControl()
        self.clock = clock
        self.sleep = sleep
        self.chain_timing = chain_timing if chain_timing is not None else ChainTiming()
        self.valid_scale = valid_scale
        self.nonce_scale = nonce_scale
        self.envelope = SafetyEnvelope(board.safety, clock=clock, board=board.name)
        self.jobs = JobSource(seed, wall=wall)  # wall: the jobs' ntime (unix s)
        self.counters = LinkCounters()
        self._windows: list[PointAccumulator] = []
        self.events = EventPublisher(
            board.name,
            board.chips,
            pipeline,
            state,
            self.jobs.table,
            self.counters,
            self._windows,
            clock=clock,
            valid_scale=valid_scale,
        )
        self.writer = SetpointWriter(
            board.name, self.control, pipeline, state, board.safety.freq_min_mhz, clock=clock
        )
        self.health = LinkHealth(clock(), int(timing.silence_timeout_s * 1e9), timing.crc_storm_per_s)
        self.telemetry = TelemetryLoop(
            board.name,
            self.control,
            state,
            self.envelope,
            pipeline,
            self._windows,
            timing.telemetry_interval_s,
            sleep=sleep,
        )
        self._chain: Chain | None = None
        self._transport: Transport | None = None
        self._ready = asyncio.Event()
        self._up = asyncio.Event()  # set while a session is up (bring-up done)
        #: One write to the board at a time: a control-loop write computed before shutdown() must not land
        #: after the shutdown's floors (it would leave the board, and the status, at the old setpoint).
        self._apply_lock = asyncio.Lock()
        self.connected = False
        #: Called with (board, {"plan", "summary"}) for every finished sweep point (MQTT publishes it).
        self.on_summary: Callable[[str, dict[str, Any]], None] | None = None
        self.bringup = BringUpWatch(state, now_ns=clock())
        self._stage = STAGE_CONTROL
        self.reconnector = Reconnector(
            transport_factory,
            self._session,
            backoff=Backoff(timing.reconnect_min_s, 2.0, timing.reconnect_max_s),
            sleep=sleep,
            name=f"board {board.name}",
            on_state=self._on_link_state,
            on_open_error=functools.partial(self.bringup.failed, STAGE_OPEN),
            quiet=lambda: self.bringup.failing,
        )

    # ------------------------------------------------------------------ what the board has now

    @property
    def applied(self) -> Setpoint | None:
        """The setpoint the board has now (None: unknown, after a reconnect until the first write)."""
        return self.writer.applied

    @applied.setter
    def applied(self, sp: Setpoint | None) -> None:
        self.writer.applied = sp

    @property
    def point(self) -> int:
        """The plan point the current request serves (-1: none)."""
        return self.writer.point

    @point.setter
    def point(self, point: int) -> None:
        self.writer.point = point

    @property
    def on_freq_written(self) -> Callable[[int, int, float], None] | None:
        """Called with (point, t_ns, freq_mhz) as soon as each PLL write has left the host (``t_ns`` on this
        supervisor's clock, taken when the transport write returned): when a setpoint really took effect."""
        return self.writer.on_freq_written

    @on_freq_written.setter
    def on_freq_written(self, cb: Callable[[int, int, float], None] | None) -> None:
        self.writer.on_freq_written = cb

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run until cancelled: connect, bring up, stream, reconnect with backoff on any link failure."""
        self.state.status = "starting"
        await self.reconnector.run()

    def _on_link_state(self, st: LinkState) -> None:
        if st is LinkState.LOST:
            self.connected = False
            self.state.connected = False
            self.state.status = "reconnecting"
            self._ready.clear()
        if st is LinkState.RECOVERED:
            self.state.reconnects += 1
        self.pipeline.log(self.name, "state", {"link": st.value})

    async def shutdown(self, wait_link_s: float = 2.0) -> None:
        """Put the board in its safe state (floors) and refuse every later request.

        A reconnect in progress is given ``wait_link_s`` to finish (its bring-up starts at the floors now);
        the floors are written after any write already in flight, under the same lock.
        """
        self.envelope.shutdown()
        if not self.connected and self._transport is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), wait_link_s)
        async with self._apply_lock:
            out = self.envelope.tick()
            chain = self._chain
            if chain is not None and self.connected:
                with contextlib.suppress(TransportError, ChainError, chipmath.UnreachableFrequency):
                    await asyncio.wait_for(self.writer.apply(chain, out), 5.0)
        self.events.publish()
        self.state.status = "stopped"
        self.pipeline.log(self.name, "safety", {"action": "shutdown", "setpoint": out.setpoint.as_dict()})

    # ------------------------------------------------------------------ session

    async def _session(self, transport: Transport) -> None:
        self._transport = transport
        while True:
            try:
                chain = await self._bring_up(transport)
            except (ChainError, TransportError, I2CError, TimeoutError) as exc:  # I2C/timeout: the reset line
                self.bringup.failed(self._stage, exc)
                if not isinstance(exc, TransportError):
                    raise TransportError(f"bring-up failed: {exc}") from exc
                raise
            self.bringup.up()
            try:
                await _run_all(
                    self.stream(transport),
                    self._control_loop(chain),
                    feed_jobs(
                        chain.send_job, self.jobs, self.writer.is_held, self.timing.job_interval_s, self.sleep
                    ),
                    self.telemetry.run(),
                )
            except _Reinit:
                log.warning("board %s: re-initialising after %s", self.name, self.envelope.mode)
                continue
            finally:
                self.connected = False
                self._up.clear()
                self._ready.clear()
                self.events.publish()

    async def _bring_up(self, transport: Transport) -> Chain:
        env = self.envelope
        env.reset_output()
        out = env.tick()
        # start-up writes safe values before anything else: fan, core voltage at its floor
        self._stage = STAGE_CONTROL
        await self.writer.start(out)
        chain = Chain(transport, reset=self.control.reset_line, timing=self.chain_timing, sleep=self.sleep)
        self._stage = STAGE_CHAIN
        async with chain:
            info = await chain.bring_up(
                freq_mhz=writable_freq(out.setpoint.freq_mhz, self.board.safety.freq_min_mhz),
                ticket_difficulty=max(1, int(out.setpoint.ticket_diff)),
                baud=self.board.baud,
                expected_chips=self.board.chips,
            )
        stale = len(chain.drain_nonces())  # from jobs of before the re-init: not this session's work
        extra = self.counters.extra
        if stale:
            extra["nonces_during_bring_up"] = extra.get("nonces_during_bring_up", 0) + stale
        self._chain = chain
        self.jobs.reset()
        self.counters.bring_ups += 1
        self.events.new_stream()  # the chain's bring-up reads are not this stream's
        self.health.restart(self.clock(), 0, getattr(transport, "quiet_ns", None))
        self.connected = True
        self._up.set()
        st = self.state
        st.connected = True
        st.status = "connected"
        st.chips = info.chip_count
        self.writer.brought_up(out.setpoint.voltage_v, chain)
        log.info(
            "board %s: up, %d chip(s), %d baud, %.1f MHz",
            self.name,
            info.chip_count,
            info.baud,
            info.freq_mhz,
        )
        self.pipeline.log(self.name, "state", {"up": True, "chips": info.chip_count, "baud": info.baud})
        return chain

    async def stream(self, transport: Transport) -> None:
        """Keep each read with its baud and the setpoint in force (decoded in batches); the link lives."""
        read, events, health, writer = transport.read, self.events, self.health, self.writer
        while True:
            batch = await read()
            full = events.keep(batch, transport.baud, writer.applied, writer.point)
            health.saw_bytes(self.clock())  # when the loop saw bytes (the read may be older if it was late)
            if full:
                events.publish()

    async def _control_loop(self, chain: Chain) -> None:
        """Each tick: the envelope's output written, the status, a publish when due, the link's health."""
        tick_s = self.timing.control_tick_s
        batch_ns = int(self.timing.batch_interval_s * 1e9)
        env, events, health = self.envelope, self.events, self.health
        wake_ns = self.clock()
        while True:
            health.loop_late(self.clock() - wake_ns)  # a late loop is no evidence of a silent board
            async with self._apply_lock:  # tick inside: after a shutdown() this is the floor
                out = env.tick()
                if out.reinit:
                    raise _Reinit
                await self.writer.apply(chain, out)
            st = self.state
            if out.mode is Mode.NORMAL:
                st.status = "connected"
                if out.setpoint.close_to(env.target):
                    self._ready.set()
                else:
                    self._ready.clear()
            else:
                st.status = env.status
                self._ready.clear()
            now = self.clock()
            if now - events.last_publish_ns >= batch_ns:
                events.publish()
            if health.check(now, events.decoder.crc_errors, held=self.writer.held):
                await chain.send(read_reg(REG_CHIP_ID))
            events.sync_counters()
            wake_ns = self.clock() + int(tick_s * 1e9)
            await self.sleep(tick_s)

    # ------------------------------------------------------------------ PlanTarget

    def request(self, sp: Setpoint, point: int, source: Source = Source.PLAN) -> Decision:
        """Ask for a setpoint through the safety gate; counted and logged when clamped or refused."""
        d = self.envelope.gate(Request(sp, source))
        if d.outcome != "applied":
            for r in d.reason.split(","):
                self.state.count_safety(d.outcome, r)
            self.pipeline.log(
                self.name, "safety", {"outcome": d.outcome, "reason": d.reason, "request": sp.as_dict()}
            )
        if d.applied is not None:
            self.point = point
            self._ready.clear()
        return d

    async def wait_up(self) -> None:
        """Wait until a session is up (bring-up done)."""
        await self._up.wait()

    async def wait_ready(self) -> None:
        """Wait until connected, in normal mode, with the ramp at the gated target."""
        while True:
            await self._ready.wait()
            if self.connected and self.envelope.mode is Mode.NORMAL:
                return
            self._ready.clear()

    def open_window(self) -> PointAccumulator:
        acc = PointAccumulator()
        self._windows.append(acc)
        return acc

    def close_window(self, acc: PointAccumulator) -> None:
        self.events.publish()
        with contextlib.suppress(ValueError):
            self._windows.remove(acc)

    def progress(self, name: str, kind: str, i: int, n: int, eta_s: float | None) -> None:
        self.state.plan = PlanProgress(name, kind, i, n, eta_s)
        self.pipeline.log(self.name, "plan", {"plan": name, "kind": kind, "i": i, "n": n})

    def summary(self, plan: str, s: PointSummary) -> None:
        payload = {"plan": plan, "summary": dataclasses.asdict(s)}
        self.pipeline.log(self.name, "plan", payload)
        if self.on_summary is not None:
            self.on_summary(self.name, payload)


# ---------------------------------------------------------------------------------------------- helpers


async def _run_all(*coros: Coroutine[Any, Any, None]) -> None:
    """Run coroutines together; the first to fail cancels the others and its exception propagates."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            exc = t.exception()
            if exc is not None:
                raise exc
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
