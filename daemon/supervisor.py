"""Board supervisor: one per board. Open, bring up, run jobs, stream replies into event batches, watch health,
reconnect (through :class:`drivers.transport.Reconnector`, the one place that reconnects), re-initialise to
safe values, and carry on recording.

Every setpoint reaches the board through :class:`daemon.safety.SafetyEnvelope`: plans call
:meth:`BoardSupervisor.request` (the gate), and only the control loop writes what :meth:`SafetyEnvelope.tick`
returns. Start-up writes the envelope's safe output before anything else.

Hot path: after bring-up the chain's per-frame reader is stopped and the supervisor reads the transport
itself with the vectorised :class:`drivers.reply_batch.ReplyBatchDecoder`; per read it keeps numpy columns
(raw read time, read id, position in the read, nonces in the read, the separate serialization-corrected
estimate, ids, setpoint in force) and publishes one Arrow batch per ``batch_interval_s``
(docs/recording-format.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daemon.board_control import BoardControl, NullControl, fan_reading
from daemon.bringup import STAGE_CHAIN, STAGE_CONTROL, STAGE_OPEN, BringUpWatch
from daemon.config import BoardConfig, TimingConfig
from daemon.event_format import read_structure
from daemon.events import Pipeline, make_event_batch
from daemon.jobs import JobSource
from daemon.plan_summary import PointAccumulator, PointSummary
from daemon.safety import Decision, Mode, Output, Request, SafetyEnvelope, Setpoint, Source
from daemon.state import BoardState, PlanProgress
from drivers import chipmath
from drivers.chain import Chain, ChainError, ChainTiming
from drivers.frames import read_reg
from drivers.i2c import I2CError
from drivers.reply_batch import ReplyBatchDecoder
from drivers.transport import Backoff, LinkState, Reconnector, Transport, TransportError
from drivers.transport.base import BITS_PER_BYTE, ReadBatch

log = logging.getLogger(__name__)

#: Decode and publish early when this many received bytes are pending (~23,800 replies; bounds memory).
MAX_PENDING_BYTES = 262_144
#: Setpoint column values before anything was applied (after a reconnect, until the first write).
NO_SETPOINT = Setpoint(0.0, 0.0, 0.0)
#: Chip-id register, read as a liveness probe when the link has been quiet for half the silence timeout.
REG_CHIP_ID = 0x00
#: Cap on the serialization correction of ``t_wire_ns`` (ns): 1 ms, i.e. 390 bytes at 3.125 Mbaud or ~11
#: bytes at the 115,200 reset baud. Bytes that arrive together (an FTDI latency-timer flush, a late read) did
#: not necessarily stream behind the frame at line rate, so a long tail is no evidence of an early frame.
MAX_CORRECTION_NS = 1_000_000
#: Telemetry reads that may fail in a row before the board is treated as lost (reconnect, safe values).
TELEMETRY_FAILURES_MAX = 3

Sleep = Callable[[float], Awaitable[None]]


class HealthError(TransportError):
    """The link is alive but unhealthy (silence, CRC storm): handled like a lost link (reconnect)."""


class _Reinit(Exception):
    """The safety envelope asks for a fresh bring-up (after an overheat or a brown-out)."""


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


def serialization_corrected(
    t_read_ns: np.ndarray, t_prev_read_ns: np.ndarray, bytes_after: np.ndarray, baud: np.ndarray
) -> np.ndarray:
    """When each frame's last byte left the wire (ns), from its read's time ``t_read_ns``.

    Subtracts the wire time of the ``bytes_after`` the frame in the same read at ``baud`` (10 bits a byte),
    at most :data:`MAX_CORRECTION_NS`, and never goes before ``t_prev_read_ns`` (the previous read on the
    transport returned without the frame) nor after ``t_read_ns``. All arrays int64, elementwise.
    """
    corr = np.minimum(bytes_after * (BITS_PER_BYTE * 1_000_000_000) // baud, MAX_CORRECTION_NS)
    out: np.ndarray = np.minimum(t_read_ns, np.maximum(t_read_ns - corr, t_prev_read_ns))
    return out


@dataclass(slots=True)
class LinkCounters:
    """Counters kept across reconnects."""

    reads: int = 0
    bytes: int = 0
    nonces: int = 0
    register_replies: int = 0
    crc_errors: int = 0
    dropped_bytes: int = 0
    published_rows: int = 0
    bring_ups: int = 0
    extra: dict[str, int] = field(default_factory=dict)


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
        self.jobs = JobSource(seed)
        self.counters = LinkCounters()
        self.point = -1
        self.applied: Setpoint | None = None  # what the board has now (None: unknown, after a reconnect)
        self._fan: float | None = None
        self._held = False
        self._chain: Chain | None = None
        self._transport: Transport | None = None
        self._pending: list[tuple[ReadBatch, int, Setpoint | None, int]] = []
        self._pending_bytes = 0
        self._last_publish_ns = clock()
        self._last_rx_ns = clock()
        self._late_ns = 0  # control-loop lateness since the loop last saw bytes (not silence)
        self._probe_sent = False
        self._crc_window: tuple[int, int] = (clock(), 0)
        self._windows: list[PointAccumulator] = []
        self._decoder = ReplyBatchDecoder()
        self._stream_end = 0
        self._prev_read_ns: int | None = None  # t_host_ns of the last read decoded (floor of t_wire_ns)
        self._crc_base = 0
        self._dropped_base = 0
        self._ready = asyncio.Event()
        self._up = asyncio.Event()  # set while a session is up (bring-up done)
        #: One write to the board at a time: a control-loop write computed before shutdown() must not land
        #: after the shutdown's floors (it would leave the board, and the status, at the old setpoint).
        self._apply_lock = asyncio.Lock()
        self.connected = False
        #: Called with (point, t_ns, freq_mhz) as soon as each PLL write has left the host (``t_ns`` on this
        #: supervisor's clock, taken when the transport write returned): when a setpoint really took effect.
        self.on_freq_written: Callable[[int, int, float], None] | None = None
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
                    await asyncio.wait_for(self._apply(chain, out), 5.0)
        self._publish()
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
                    self._stream(transport),
                    self._control_loop(chain),
                    self._job_loop(chain),
                    self._telemetry_loop(),
                )
            except _Reinit:
                log.warning("board %s: re-initialising after %s", self.name, self.envelope.mode)
                continue
            finally:
                self.connected = False
                self._up.clear()
                self._ready.clear()
                self._publish()

    async def _bring_up(self, transport: Transport) -> Chain:
        env = self.envelope
        env.reset_output()
        self.applied = None
        out = env.tick()
        # start-up writes safe values before anything else: fan, core voltage at its floor
        self._stage = STAGE_CONTROL
        await self.control.connect()
        await self.control.set_fan(out.fan_pct)
        await self.control.set_core_voltage(out.setpoint.voltage_v)
        self._fan = out.fan_pct
        self._held = False
        chain = Chain(transport, reset=self.control.reset_line, timing=self.chain_timing, sleep=self.sleep)
        self._stage = STAGE_CHAIN
        floor = self.board.safety.freq_min_mhz
        async with chain:
            info = await chain.bring_up(
                freq_mhz=writable_freq(out.setpoint.freq_mhz, floor),
                ticket_difficulty=max(1, int(out.setpoint.ticket_diff)),
                baud=self.board.baud,
                expected_chips=self.board.chips,
            )
        stale = len(chain.drain_nonces())  # from jobs of before the re-init: not this session's work
        if stale:
            self.counters.extra["nonces_during_bring_up"] = (
                self.counters.extra.get("nonces_during_bring_up", 0) + stale
            )
        self.applied = Setpoint(out.setpoint.voltage_v, chain.freq_mhz, float(chain.ticket_difficulty))
        self._chain = chain
        self.jobs.reset()
        self.counters.bring_ups += 1
        self._crc_base = self.counters.crc_errors
        self._dropped_base = self.counters.dropped_bytes
        self._decoder = ReplyBatchDecoder()
        self._stream_end = 0
        self._prev_read_ns = None  # the chain's bring-up reads are not this stream's
        now = self.clock()
        self._last_rx_ns = now
        self._late_ns = 0
        self._probe_sent = False
        self._crc_window = (now, 0)
        self.connected = True
        self._up.set()
        st = self.state
        st.connected = True
        st.status = "connected"
        st.chips = info.chip_count
        st.set_setpoint(self.applied.voltage_v, self.applied.freq_mhz, self.applied.ticket_diff)
        log.info(
            "board %s: up, %d chip(s), %d baud, %.1f MHz",
            self.name,
            info.chip_count,
            info.baud,
            info.freq_mhz,
        )
        self.pipeline.log(self.name, "state", {"up": True, "chips": info.chip_count, "baud": info.baud})
        return chain

    # ------------------------------------------------------------------ the hot path

    async def _stream(self, transport: Transport) -> None:
        """Keep every read with its time, id, baud and the setpoint in force; decoding is batched."""
        read = transport.read
        counters = self.counters
        pending = self._pending
        while True:
            batch = await read()
            pending.append((batch, transport.baud, self.applied, self.point))
            n = len(batch.data)
            self._pending_bytes += n
            counters.reads += 1
            counters.bytes += n
            self._last_rx_ns = self.clock()  # when the loop saw bytes (the batch may be older if it was late)
            self._late_ns = 0
            self._probe_sent = False
            if self._pending_bytes >= MAX_PENDING_BYTES:
                self._publish()

    def _decode_pending(self) -> dict[str, np.ndarray] | None:
        """Decode the kept reads in one vectorised pass; columns of the nonce replies (None: no nonce).

        A frame belongs to the read that delivered its last byte: ``t_ns`` = ``t_host_ns`` is that read's
        time, as measured; ``read_pos`` / ``read_nonces`` are its position among the read's nonce frames and
        their number. The estimate ``t_wire_ns`` (a separate column, never the analysis time) subtracts the
        wire time of the bytes after the frame in that read (at that read's baud), with two bounds: the
        correction is at most :data:`MAX_CORRECTION_NS`, and ``t_wire_ns`` is never earlier than the previous
        read's ``t_host_ns`` on this transport (the frame was not complete when that read returned without
        its last byte). The first read of a session has only the cap.
        """
        reads = self._pending[:]
        self._pending.clear()  # in place: the stream loop holds this list
        self._pending_bytes = 0
        if not reads:
            return None
        data = b"".join(r[0].data for r in reads)
        ends = self._stream_end + np.cumsum(
            np.fromiter((len(r[0].data) for r in reads), np.int64, len(reads))
        )
        self._stream_end = int(ends[-1])
        rb = self._decoder.feed(data)
        m = rb.is_nonce
        n_nonce = int(np.count_nonzero(m))
        self.counters.register_replies += len(rb) - n_nonce
        if n_nonce == 0:
            return None
        fe = rb.end_offset[m]
        ri = np.searchsorted(ends, fe, side="left")
        t_read = np.fromiter((r[0].t_host_ns for r in reads), np.int64, len(reads))
        prev = np.empty_like(t_read)  # previous read's time per read (floor of t_ns)
        prev[0] = self._prev_read_ns if self._prev_read_ns is not None else np.iinfo(np.int64).min
        prev[1:] = t_read[:-1]
        self._prev_read_ns = int(t_read[-1])
        t_host = t_read[ri]
        baud = np.fromiter((r[1] for r in reads), np.int64, len(reads))[ri]
        sps = [r[2] or NO_SETPOINT for r in reads]
        self.counters.nonces += n_nonce
        pos, per_read = read_structure(ri)
        return {
            "t_host_ns": t_host,
            "t_wire_ns": serialization_corrected(t_host, prev[ri], ends[ri] - fe, baud),
            "read_pos": pos,
            "read_nonces": per_read,
            "read_id": np.fromiter((r[0].read_id for r in reads), np.int64, len(reads))[ri],
            "nonce": rb.value[m],
            "b7": rb.b7[m],
            "version_bits": rb.version_bits[m],
            "voltage_v": np.array([sp.voltage_v for sp in sps], np.float32)[ri],
            "freq_mhz": np.array([sp.freq_mhz for sp in sps], np.float32)[ri],
            "ticket_diff": np.array([sp.ticket_diff for sp in sps], np.float64)[ri],
            "point": np.fromiter((r[3] for r in reads), np.int32, len(reads))[ri],
        }

    def _publish(self) -> None:
        """Decode what is pending into one event batch and publish it (inline; never blocks)."""
        self._last_publish_ns = self.clock()
        cols = self._decode_pending()
        self._sync_counters()
        if cols is None:
            return
        nonce, b7, vbits, ticket = cols["nonce"], cols["b7"], cols["version_bits"], cols["ticket_diff"]
        job_id = b7 & np.uint8(0xF8)
        share = self.jobs.check(job_id, nonce, vbits)
        valid = share >= ticket * self.valid_scale
        per = np.uint32(256 // max(1, self.chips))
        batch = make_event_batch(
            self.name,
            t_host_ns=cols["t_host_ns"],
            t_ns=cols["t_host_ns"],
            t_wire_ns=cols["t_wire_ns"],
            read_pos=cols["read_pos"],
            read_nonces=cols["read_nonces"],
            chip=(((nonce >> np.uint32(17)) & np.uint32(0xFF)) // per).astype(np.int16),
            core=((nonce >> np.uint32(25)) & np.uint32(0x7F)).astype(np.int16),
            small_core=(b7 & np.uint8(0x07)).astype(np.int8),
            job_id=job_id,
            nonce=nonce,
            version_bits=vbits,
            share_diff=share,
            valid=valid,
            voltage_v=cols["voltage_v"],
            freq_mhz=cols["freq_mhz"],
            ticket_diff=ticket.astype(np.float32),
            read_id=cols["read_id"],
            point=cols["point"],
        )
        for acc in self._windows:
            acc.add_events(valid, ticket)
        self.counters.published_rows += batch.num_rows
        self.pipeline.publish(batch, self.name)

    # ------------------------------------------------------------------ control, jobs, telemetry

    async def _control_loop(self, chain: Chain) -> None:
        tick_s = self.timing.control_tick_s
        batch_ns = int(self.timing.batch_interval_s * 1e9)
        silence_ns = int(self.timing.silence_timeout_s * 1e9)
        env = self.envelope
        wake_ns = self.clock()
        while True:
            self._late_ns += max(0, self.clock() - wake_ns)  # a late loop is no evidence of a silent board
            async with self._apply_lock:  # tick inside: after a shutdown() this is the floor
                out = env.tick()
                if out.reinit:
                    raise _Reinit
                await self._apply(chain, out)
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
            if now - self._last_publish_ns >= batch_ns:
                self._publish()
            quiet = self._quiet_ns(now)
            if quiet > silence_ns and not self._held:
                raise HealthError(f"no bytes for {quiet / 1e9:.1f} s")
            if quiet > silence_ns // 2 and not self._probe_sent and not self._held:
                self._probe_sent = True
                await chain.send(read_reg(REG_CHIP_ID))
            self._check_crc_storm(now)
            self._sync_counters()
            wake_ns = self.clock() + int(tick_s * 1e9)
            await self.sleep(tick_s)

    def _quiet_ns(self, now: int) -> int:
        """How long (ns) the link has been silent, never counting time the process was not running.

        The loop's view (since it last saw bytes, minus its own lateness since then) and, when the transport
        has a reader thread, that thread's view on its own clock (docs/operations.md, "Busy hosts"): silence
        needs both, so reads that wait for a late loop are not taken for a lost board.
        """
        quiet = now - self._last_rx_ns - self._late_ns
        reader_quiet = getattr(self._transport, "quiet_ns", None)
        return min(quiet, reader_quiet()) if reader_quiet is not None else quiet

    def _sync_counters(self) -> None:
        c, dec = self.counters, self._decoder
        c.crc_errors = self._crc_base + dec.crc_errors
        c.dropped_bytes = self._dropped_base + dec.dropped_bytes
        self.state.crc_errors = c.crc_errors
        self.state.dropped_bytes = c.dropped_bytes

    def _check_crc_storm(self, now: int) -> None:
        t0, c0 = self._crc_window
        if now - t0 < 1_000_000_000:
            return
        errors = self._decoder.crc_errors
        rate = (errors - c0) * 1e9 / (now - t0)
        self._crc_window = (now, errors)
        if rate > self.timing.crc_storm_per_s:
            raise HealthError(f"CRC storm: {rate:.0f} bad frames/s")

    async def _apply(self, chain: Chain, out: Output) -> None:
        """Write ``out`` to the board: fan, reset line, core voltage, PLL, ticket mask (only what changed)."""
        prev = self.applied
        sp = out.setpoint
        if out.fan_pct != self._fan:
            await self.control.set_fan(out.fan_pct)
            self._fan = out.fan_pct
        freq = prev.freq_mhz if prev is not None else chain.freq_mhz
        if not self._held:
            # the chip is alive: PLL (down first in an emergency) and ticket mask
            want = writable_freq(sp.freq_mhz, self.board.safety.freq_min_mhz)
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
        if out.hold_reset != self._held:
            if line is not None and line.has_reset:
                await line.set_reset(out.hold_reset)
            self._held = out.hold_reset
        new = Setpoint(sp.voltage_v, freq, float(chain.ticket_difficulty))
        if new != prev:
            self.applied = new
            self.state.set_setpoint(new.voltage_v, new.freq_mhz, new.ticket_diff)
            self.pipeline.log(
                self.name, "setpoint", {**new.as_dict(), "mode": str(out.mode), "point": self.point}
            )

    async def _job_loop(self, chain: Chain) -> None:
        while True:
            if not self._held:
                await chain.send_job(self.jobs.next_job())
            await self.sleep(self.timing.job_interval_s)

    async def _telemetry_loop(self) -> None:
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
                await self.sleep(self.timing.telemetry_interval_s)
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
            for acc in self._windows:
                acc.add_telemetry(t)
            reason = self.envelope.observe(t)
            for w in t.warnings:  # e.g. output current above the regulator's warn limit (docs/daemon.md)
                log.warning("board %s: %s", self.name, w)
                self.pipeline.log(self.name, "safety", {"warning": w, "telemetry": t.as_dict()})
            st.set_trips(self.envelope.trips)
            if reason is not None:
                for acc in self._windows:
                    acc.trips += 1
                log.warning("board %s: %s -> safe state (%s)", self.name, reason, t)
                self.pipeline.log(self.name, "safety", {"trip": reason, "telemetry": t.as_dict()})
            await self.sleep(self.timing.telemetry_interval_s)

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
        self._publish()
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
