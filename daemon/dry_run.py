"""See before you touch: what the bring-up and the first plan point would send to a board, without opening it.

The real code runs: a :class:`daemon.supervisor.BoardSupervisor` for the configured board does its bring-up
(control channel: fan, core voltage and whatever start-up configuration the part drivers write; then the
chain in ESP-Miner order) and its safety envelope ramps to the first plan point through the supervisor's own
writer (``_apply``). Only the two ports are replaced by :class:`RecordingTransport`\\ s that keep every byte
written, in order, and answer like a board would: the ASIC side from the simulator's in-memory chain
(:class:`simulator.chain.ChainCore`, ``chips`` of the config), the control side from its bitaxe-raw firmware
and I2C parts (:class:`simulator.bitaxe_raw.BitaxeRawDevice`). Nothing is opened; time is virtual, so the
ESP-Miner waits cost nothing.

Not listed: job frames (sent every ``timing.job_interval_s`` once the board is up; random work) and the
telemetry reads. Ramp steps are those of ``timing.control_tick_s`` ticks taken on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from daemon.board_control import BoardControl, NullControl, PartsControl
from daemon.config import DISCOVER, BoardConfig, Config, PlanConfig
from daemon.events import Pipeline
from daemon.plan_points import modulation_levels, sweep_points
from daemon.safety import Mode, Setpoint, Source
from daemon.state import BoardState
from daemon.supervisor import BoardSupervisor
from drivers.chain import ChainTiming
from drivers.transport.base import ReadBatch, TransportClosed, TransportError
from simulator.bitaxe_raw import BitaxeRawDevice
from simulator.chain import ChainCore

#: Data-port baud at power-on (the chain's reset rate).
RESET_BAUD = 115_200
#: Simulated time (s) the stand-in chain runs after each write to emit its replies.
REPLY_WINDOW_S = 0.05
#: Real-time waits of the chain (they do not change a byte): the stand-in answers at once.
DRY_TIMING = ChainTiming(enum_gap_s=0.05, register_timeout_s=2.0)
#: Control ticks after which the ramp to the first point is given up (a stuck envelope would loop).
MAX_TICKS = 100_000


class DryRunError(RuntimeError):
    """The bring-up or the first point failed against the stand-in board (the message says where)."""


@dataclass(frozen=True, slots=True)
class Sent:
    """One write (``data``) or host baud change (``baud``) on ``port`` (``data``/``control``) at ``t_s``."""

    port: str
    t_s: float
    data: bytes = b""
    baud: int | None = None


class VirtualClock:
    """Clock (ns) and sleep for the supervisor: sleeping moves the clock, never waits."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    @property
    def s(self) -> float:
        return self.ns / 1e9

    async def sleep(self, seconds: float) -> None:
        self.ns += max(0, round(seconds * 1e9))
        await asyncio.sleep(0)


class RecordingTransport:
    """A transport that records every write into ``log`` and answers through ``respond(data, t_s)``."""

    def __init__(
        self,
        port: str,
        log: list[Sent],
        respond: Callable[[bytes, float], bytes],
        clock: VirtualClock,
        *,
        baud: int = RESET_BAUD,
    ) -> None:
        self.port = port
        self.log = log
        self.respond = respond
        self.clock = clock
        self._baud = baud
        self._open = False
        self._replies: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reads = 0

    @property
    def baud(self) -> int:
        return self._baud

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def has_reset(self) -> bool:
        return False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            self._replies.put_nowait(None)

    async def write(self, data: bytes) -> None:
        if not self._open:
            raise TransportClosed(f"{self.port}: write on a closed stand-in")
        self.log.append(Sent(self.port, self.clock.s, bytes(data)))
        reply = self.respond(bytes(data), self.clock.s)
        if reply:
            self._replies.put_nowait(reply)

    async def read(self) -> ReadBatch:
        data = await self._replies.get()
        if data is None:
            self._replies.put_nowait(None)
            raise TransportClosed(f"{self.port}: closed")
        self._reads += 1
        return ReadBatch(data, self.clock(), self._reads - 1)

    async def set_baud(self, baud: int) -> None:
        self._baud = baud
        self.log.append(Sent(self.port, self.clock.s, baud=baud))


class StandInBoard:
    """The simulator's chain and bitaxe-raw device in memory, behind two recording transports."""

    def __init__(self, board: BoardConfig, clock: VirtualClock, log: list[Sent]) -> None:
        self.core = ChainCore(chips=board.chips, seed=0)
        self.device = BitaxeRawDevice(self.core, "ultra" if board.kind == "ultra" else "gamma")
        self.clock = clock
        self.log = log
        self._t = 0.0

    def _now(self, t_s: float) -> float:
        self._t = max(self._t, t_s)
        return self._t

    def _chain(self, data: bytes, t_s: float) -> bytes:
        t = self._now(t_s)
        self.core.feed(data, t)
        self._t = t + REPLY_WINDOW_S
        return b"".join(d for _, d in self.core.advance(self._t))

    def _control(self, data: bytes, t_s: float) -> bytes:
        return self.device.feed(data, self._now(t_s))

    def data_transport(self) -> RecordingTransport:
        return RecordingTransport("data", self.log, self._chain, self.clock)

    def control_transport(self) -> RecordingTransport:
        return RecordingTransport("control", self.log, self._control, self.clock)


def first_setpoint(plan: PlanConfig) -> Setpoint:
    """The setpoint a fresh run of ``plan`` asks for first."""
    if plan.kind == "sweep":
        return sweep_points(plan)[0].setpoint
    if plan.kind == "modulate":
        level = float(modulation_levels(plan)[0, 0])
        freq = plan.freq_lo_mhz + level * (plan.freq_hi_mhz - plan.freq_lo_mhz)
        return Setpoint(plan.hold_voltage_v, freq, plan.hold_ticket_diff)
    return Setpoint(plan.hold_voltage_v, plan.hold_freq_mhz, plan.hold_ticket_diff)


@dataclass
class DryRun:
    """What one board would be sent: ``sent`` in order; the first plan and its point (None: no plan)."""

    board: BoardConfig
    sent: list[Sent]
    plan: str | None
    point: Setpoint | None
    applied: Setpoint | None
    outcome: str
    bring_up_writes: int  # entries of ``sent`` that belong to the bring-up (the rest: the first point)


async def dry_run_board(cfg: Config, board: BoardConfig) -> DryRun:
    """Drive the real bring-up and the ramp to the first plan point of ``board`` against a stand-in."""
    clock = VirtualClock()
    sent: list[Sent] = []
    try:
        stand_in = StandInBoard(board, clock, sent)
    except ValueError as exc:  # e.g. more chips than the emulator models
        raise DryRunError(f"board {board.name}: cannot stand in for it: {exc}") from exc
    control: BoardControl = NullControl()
    # as the daemon: gamma/ultra boards with a control port (or one USB discovery would find) get the parts
    if board.kind in ("gamma", "ultra") and (board.control_port or board.data_port == DISCOVER):
        # the parts as the daemon picks them: a board version when the config has one, else the kind
        control = PartsControl(stand_in.control_transport, getattr(board, "board_version", "") or board.kind)
    state = BoardState(board.name, board.kind, board.chips)
    sup = BoardSupervisor(
        board,
        cfg.timing,
        Pipeline(clock=clock),
        state,
        stand_in.data_transport,
        control=control,
        clock=clock,
        sleep=clock.sleep,
        chain_timing=DRY_TIMING,
    )
    transport = stand_in.data_transport()
    await transport.open()
    plans = [p for p in cfg.plans if not p.boards or board.name in p.boards]
    if cfg.live.enabled and board.name == cfg.live.board:
        plans = []
    try:
        try:
            chain = await sup._bring_up(transport)
        except Exception as exc:
            raise DryRunError(f"board {board.name}: bring-up failed: {exc}") from exc
        env = sup.envelope
        await sup.writer.apply(chain, env.tick())  # the control loop's first tick, right after the bring-up
        n_bring_up = len(sent)
        if not plans:
            return DryRun(board, sent, None, None, sup.applied, "no plan", n_bring_up)
        sp = first_setpoint(plans[0])
        decision = sup.request(sp, 0, Source.PLAN)  # between two ticks, as a plan asks
        if decision.applied is not None:
            for _ in range(MAX_TICKS):
                await clock.sleep(cfg.timing.control_tick_s)
                out = env.tick()
                await sup.writer.apply(chain, out)
                if out.mode is Mode.NORMAL and out.setpoint.close_to(env.target):
                    break
            else:
                raise DryRunError(f"board {board.name}: the ramp did not reach {sp} in {MAX_TICKS} ticks")
        outcome = decision.outcome + (f" ({decision.reason})" if decision.reason else "")
        return DryRun(board, sent, plans[0].name, sp, sup.applied, outcome, n_bring_up)
    except TransportError as exc:
        raise DryRunError(f"board {board.name}: {exc}") from exc
    finally:
        await transport.close()
        await control.close()


def dry_run(cfg: Config, boards: list[BoardConfig] | None = None) -> list[DryRun]:
    """:func:`dry_run_board` for each board (``cfg.boards`` by default), in a fresh event loop."""

    async def run_all() -> list[DryRun]:
        return [await dry_run_board(cfg, b) for b in (cfg.boards if boards is None else boards)]

    return asyncio.run(run_all())
