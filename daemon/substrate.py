"""``reservoir.substrate.Substrate`` over a board supervisor: the physical side of the asic reservoir.

:class:`BoardSubstrate` runs one :class:`~daemon.supervisor.BoardSupervisor` (an emulated board from the
simulator, or a configured real board) on an asyncio loop in a background thread. :meth:`BoardSubstrate.run`
takes a :class:`~reservoir.substrate.SlotSchedule`, asks for one setpoint per slot through the safety gate on
an absolute schedule, and returns the nonce events of each slot (split by their serialization-corrected
timestamps). A slot starts when its PLL write left the host (``BoardSupervisor.on_freq_written``), not when
it was requested: the chip counts at the new frequency only from then on, so the request-to-write latency
would otherwise shift counts into later slots (spurious memory). A slot whose frequency needed no write (the
same PLL setting as before) starts at its due time plus the run's median write latency.

Emulated boards run on an accelerated clock: every daemon clock and sleep is scaled by ``time_scale`` so slot
lengths, timestamps and timing constants are all in emulated time.

The envelope still applies: per-chip setpoints are averaged (one PLL per chain is written broadcast) and
every slot's frequency is clamped to the board's limits; the default limits for the emulator allow fast
frequency steps so the modulation is not ramp-limited.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from daemon.board_control import BoardControl, PartsControl
from daemon.config import BoardConfig, SafetyLimits, SimulateConfig, TimingConfig, load_config
from daemon.events import Pipeline, event_slots
from daemon.safety import Setpoint
from daemon.sim_boards import (
    EMULATOR_LIMITS,
    SIM_CHAIN_TIMING,
    InProcessSimBoard,
    SimBoard,
    check_plants,
    start_sim_boards,
)
from daemon.state import BoardState
from daemon.supervisor import BoardSupervisor
from daemon.virtual_time import VirtualClock, VirtualTimeLoop, unfrozen
from drivers.chain import ChainTiming
from drivers.transport import SerialTransport, Transport
from reservoir.substrate import EventSlot, SlotSchedule

T = TypeVar("T")

#: Shortest real-time slot (s): the accelerated clock is slowed down so a slot never lasts less than this on
#: the host. Slots start at their PLL writes (module docstring), which removes the request-to-write latency
#: (measured 2-8 ms real on a loaded 2-core host), but not the lateness after the write (the emulator
#: applying it, replies read late: a few ms real, more under load): at 25 ms per slot that is a small
#: fraction of a slot; at 4 ms (the old value) counts followed the setpoint 1-3 slots late
#: (docs/asic-results.md, "Pipeline latency").
MIN_REAL_SLOT_S = 0.025
#: Time (emulated s) allowed after the last slot for replies still on the wire to arrive.
TAIL_S = 0.05
#: Host starvation guard (on the bench's substrate, make_substrate): a slot whose setpoint request went out
#: more than STARVED_LATE_SLOTS of a slot after its due time is late; a run with more than STARVED_MAX_FRAC of
#: its slots late is refused (StarvedRun). On a starved host the emulator, on the same loop, applies writes
#: and emits nonces in late bursts that are then stamped at their read time: empty and bursting slots (Fano
#: factor 13-151 and 17-50 % empty slots measured at load 13-15 and 4x; docs/asic-results.md).
STARVED_LATE_SLOTS = 0.5
STARVED_MAX_FRAC = 0.1
#: Bring-up and first-setpoint timeout (real s).
START_TIMEOUT_S = 60.0


class StarvedRun(RuntimeError):
    """The host could not keep the slot schedule: the slots would be corrupt (see STARVED_LATE_SLOTS)."""


def check_schedule(late_ns: np.ndarray, slot_ns: int, max_frac: float = STARVED_MAX_FRAC) -> None:
    """Raise :class:`StarvedRun` when more than ``max_frac`` of the slots were requested over
    STARVED_LATE_SLOTS of a slot late (``late_ns``: request minus due time, ns)."""
    late = np.asarray(late_ns, dtype=np.int64)
    bad = int(np.count_nonzero(late > STARVED_LATE_SLOTS * slot_ns))
    if late.size and bad > max_frac * late.size:
        raise StarvedRun(
            f"host too slow for the slot schedule: {bad} of {late.size} slots started more than "
            f"{STARVED_LATE_SLOTS:g} slot late (worst {late.max() / 1e6:.0f} ms of {slot_ns / 1e6:g} ms); "
            "the slots would be corrupt, so the run is refused: rerun on a less loaded host, with longer "
            "slots or a smaller --time-scale"
        )


class ScaledClock:
    """Monotonic ns running ``scale`` times faster than the host clock from ``t0``."""

    def __init__(self, scale: float, base: Callable[[], int] = time.monotonic_ns) -> None:
        self.scale = scale
        self._base = base
        self.t0 = base()

    def __call__(self) -> int:
        return self.t0 + int((self._base() - self.t0) * self.scale)

    async def sleep(self, s: float) -> None:
        await asyncio.sleep(max(0.0, s) / self.scale)


class BoardSubstrate:
    """A Substrate over one board (see the module docstring). Use as a context manager or call :meth:`close`.

    ``sim``: emulate a board with these settings; otherwise ``board`` (with a data port and optionally a
    bitaxe-raw control port) is driven as hardware on the real clock.

    ``emulated_time`` (``sim`` only): the board is served inside the loop (no ptys) and the loop runs on
    emulated time (``daemon.virtual_time``): every component sees exact emulated times, a run is a function
    of its seed and schedule, and host load changes only how long it takes; ``sim.time_scale`` is ignored.
    Off (default): the emulator on ptys at ``time_scale`` x the host clock, host timing included.
    """

    def __init__(
        self,
        *,
        sim: SimulateConfig | None = None,
        board: BoardConfig | None = None,
        limits: SafetyLimits | None = None,
        voltage_v: float = 1.2,
        ticket_diff: float = 1.0,
        timing: TimingConfig | None = None,
        max_late_frac: float | None = None,
        emulated_time: bool = False,
    ) -> None:
        if (sim is None) == (board is None):
            raise ValueError("give exactly one of sim= (emulated board) or board= (hardware)")
        if emulated_time and sim is None:
            raise ValueError("emulated_time needs an emulated board (sim=)")
        self.emulated_time = emulated_time
        self.sim = sim
        self.board = board
        self.limits = limits or (EMULATOR_LIMITS if sim is not None else board.safety)  # type: ignore[union-attr]
        self.n_chips = sim.chips if sim is not None else board.chips  # type: ignore[union-attr]
        self.voltage_v = voltage_v
        self.ticket_diff = ticket_diff
        self.timing = timing
        #: Refuse a run (StarvedRun) with more than this fraction of late slots; None: never (check_schedule).
        self.max_late_frac = max_late_frac
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sup: BoardSupervisor | None = None
        self._task: asyncio.Task[None] | None = None
        self._sim_boards: list[SimBoard] = []
        self._inproc: InProcessSimBoard | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._clock: ScaledClock | VirtualClock | None = None
        self._pipeline: Pipeline | None = None
        self._runs = 0
        #: Write minus due time (ns; emulated ns on a simulated board) of each slot written in the last run.
        self.last_write_latency_ns = np.zeros(0, dtype=np.int64)
        #: Request minus due time (ns, emulated on a simulated board) of each slot of the last run.
        self.last_late_ns = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ sync API (Substrate)

    def run(self, schedule: SlotSchedule) -> list[EventSlot]:
        """Apply one setpoint per slot and return the events of each slot."""
        self._ensure_started()
        return self._call(self._run(schedule), timeout=None)

    def close(self) -> None:
        """Put the board in its safe state, stop the emulator and the background loop."""
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._stop(), timeout=30.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> BoardSubstrate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ loop plumbing

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        loop = self._loop
        assert loop is not None
        if isinstance(loop, VirtualTimeLoop):
            coro = unfrozen(loop, coro)
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def _ensure_started(self) -> None:
        if self._loop is not None:
            return
        loop = VirtualTimeLoop() if self.emulated_time else asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="asicrc-substrate", daemon=True)
        self._thread.start()
        self._call(self._start(), timeout=START_TIMEOUT_S)

    async def _start(self) -> None:
        sim = self.sim
        timing = self.timing or TimingConfig(
            control_tick_s=0.002, job_interval_s=1.0, telemetry_interval_s=0.5, batch_interval_s=0.05
        )
        transports: dict[str, Transport] = {}
        wall: Callable[[], float] = time.time
        if sim is not None and self.emulated_time:
            assert isinstance(self._loop, VirtualTimeLoop)
            self._clock = VirtualClock(self._loop)
            self._inproc = ib = InProcessSimBoard(sim, self._clock)
            ib.start()
            transports = {"in-process:data": ib.data, "in-process:control": ib.control}
            board = BoardConfig(
                name=ib.name,
                kind="gamma",
                data_port="in-process:data",
                control_port="in-process:control",
                chips=sim.chips,
                safety=self.limits,
            )
            valid_scale, chain_timing = ib.valid_scale, SIM_CHAIN_TIMING
            wall = self._clock.unix_s  # the jobs' ntime: emulated too
        elif sim is not None:
            self._clock = ScaledClock(sim.time_scale)
            self._tmp = tempfile.TemporaryDirectory(prefix="asicrc-substrate-")
            self._sim_boards = await start_sim_boards(1, Path(self._tmp.name), sim)
            sb = self._sim_boards[0]
            board = BoardConfig(
                name="sim0",
                kind="gamma",
                data_port=str(sb.data_link),
                control_port=str(sb.control_link),
                chips=sim.chips,
                safety=self.limits,
            )
            valid_scale, chain_timing = sb.valid_scale, SIM_CHAIN_TIMING
        else:
            assert self.board is not None
            self._clock = ScaledClock(1.0)
            board = self.board
            valid_scale, chain_timing = 1.0, ChainTiming()
        clock = self._clock

        def factory(path: str) -> Callable[[], Transport]:
            if path in transports:
                return lambda: transports[path]
            return lambda: SerialTransport(path, clock=clock)

        control: BoardControl | None = None
        if board.control_port and board.kind in ("gamma", "ultra"):
            control = PartsControl(factory(board.control_port), board.kind)
        self._pipeline = Pipeline(clock=clock)
        self._sup = BoardSupervisor(
            board,
            timing,
            self._pipeline,
            BoardState(board.name, kind=board.kind, chips=board.chips),
            factory(board.data_port),
            control=control,
            clock=clock,
            sleep=clock.sleep,
            chain_timing=chain_timing,
            valid_scale=valid_scale,
            wall=wall,
        )
        self._task = asyncio.create_task(self._sup.run())
        self._sup.request(Setpoint(self.voltage_v, self.limits.freq_min_mhz, self.ticket_diff), -1)
        await asyncio.wait_for(self._sup.wait_ready(), START_TIMEOUT_S)
        if control is not None:  # the first sensor reading, so every slot has a temperature
            st = self._sup.state
            for _ in range(int(START_TIMEOUT_S / 0.01)):
                if st.chip_temp_c is not None:
                    break
                await asyncio.sleep(0.01)

    async def _stop(self) -> None:
        if self._sup is not None:
            await self._sup.shutdown()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._sup is not None:
            await self._sup.control.close()
        for sb in self._sim_boards:
            await sb.stop()
        if self._inproc is not None:
            self._inproc.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # ------------------------------------------------------------------ one schedule

    async def _run(self, schedule: SlotSchedule) -> list[EventSlot]:
        sup, clock, pipe = self._sup, self._clock, self._pipeline
        assert sup is not None and clock is not None and pipe is not None
        f = np.asarray(schedule.freq_mhz, dtype=np.float64)
        freqs = f.mean(axis=1) if f.ndim == 2 else f
        volts = None
        if schedule.voltage_v is not None:
            v = np.asarray(schedule.voltage_v, dtype=np.float64)
            volts = v.mean(axis=1) if v.ndim == 2 else v
        n, slot_ns = schedule.n_slots, int(schedule.slot_ns)
        self._runs += 1
        name = f"substrate-{self._runs}"
        sub = pipe.subscribe(name, maxsize=1_000_000, logs=False)
        temps = np.zeros(n)
        written: dict[int, int] = {}
        late = np.zeros(n, dtype=np.int64)

        def on_write(point: int, t_ns: int, _freq: float) -> None:
            if point >= 0:
                written.setdefault(point, t_ns)

        try:
            first = Setpoint(
                self.voltage_v if volts is None else float(volts[0]), float(freqs[0]), self.ticket_diff
            )
            sup.request(first, -1)
            await sup.wait_ready()
            sup.on_freq_written = on_write
            t0 = clock() + slot_ns
            due = t0 + np.arange(n, dtype=np.int64) * slot_ns
            for k in range(n):
                await clock.sleep((int(due[k]) - clock()) / 1e9)
                late[k] = clock() - int(due[k])
                vk = self.voltage_v if volts is None else float(volts[k])
                sup.request(Setpoint(vk, float(freqs[k]), self.ticket_diff), k)
                t = sup.state.chip_temp_c
                temps[k] = np.nan if t is None else t
            await clock.sleep((t0 + n * slot_ns - clock()) / 1e9)
            starts = slot_starts(due, written)
            await clock.sleep((int(starts[-1]) + slot_ns - clock()) / 1e9 + TAIL_S)
            sup.events.publish()
            batches = sub.drain()
        finally:
            sup.on_freq_written = None
            pipe.unsubscribe(name)
        lat = np.array([t - due[k] for k, t in written.items() if 0 <= k < n], dtype=np.int64)
        self.last_write_latency_ns = lat
        self.last_late_ns = late
        if self.max_late_frac is not None:
            check_schedule(late, slot_ns, self.max_late_frac)
        return event_slots(batches, starts, slot_ns, self.n_chips, temps)


def slot_starts(due_ns: np.ndarray, written_ns: dict[int, int]) -> np.ndarray:
    """When each slot's setpoint took effect (ns): its PLL write time ``written_ns[k]`` when there was one,
    else its due time plus the median write latency of the others (0 if none was written); non-decreasing."""
    due = np.asarray(due_ns, dtype=np.int64)
    w = np.full(len(due), -1, dtype=np.int64)
    for k, t in written_ns.items():
        if 0 <= k < len(due):
            w[k] = t
    has = w >= 0
    lat = int(np.median(w[has] - due[has])) if has.any() else 0
    out: np.ndarray = np.maximum.accumulate(np.where(has, w, due + lat))
    return out


def make_substrate(args: argparse.Namespace) -> BoardSubstrate:
    """The asic substrate for ``asicrc bench TASK --reservoir asic``.

    ``--simulate``: an emulated board (``chips``, ``seed`` attributes when present) served in-process on
    emulated time; with ``host_time`` on ptys at ``time_scale`` x the host clock (accelerated as far as the
    slot length allows). Otherwise the first board of ``--config``.
    """
    if getattr(args, "simulate", False):
        emulated = not getattr(args, "host_time", False)
        scale = 1.0  # emulated time has no host clock to accelerate
        if not emulated:
            slot_s = float(getattr(args, "slot_ns", 1_000_000)) / 1e9
            want = float(getattr(args, "time_scale", 1.0) or 1.0)
            scale = max(1e-3, min(want, slot_s / MIN_REAL_SLOT_S)) if slot_s > 0 else want
        sim = SimulateConfig(
            chips=int(getattr(args, "chips", 1) or 1),
            seed=int(getattr(args, "seed", 0) or 0),
            time_scale=scale,
            plant=tuple(getattr(args, "plant", None) or ()),
            plant_param=tuple(getattr(args, "plant_param", None) or ()),
        )
        check_plants(sim)  # one-line ValueError before anything starts
        # on emulated time no slot request can be late: the starvation guard is for the host clock only
        late = None if emulated else STARVED_MAX_FRAC
        return BoardSubstrate(sim=sim, max_late_frac=late, emulated_time=emulated)
    path = getattr(args, "config", None)
    if not path:
        raise ValueError("the asic reservoir needs --simulate or --config FILE with a [[boards]] entry")
    cfg = load_config(path)
    if not cfg.boards:
        raise ValueError(f"{path}: no [[boards]] configured for the asic reservoir")
    return BoardSubstrate(board=cfg.boards[0], max_late_frac=STARVED_MAX_FRAC)
