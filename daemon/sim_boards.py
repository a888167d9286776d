"""Emulated boards for ``asicrc run --simulate N``, driven through the hardware path.

Each board is the simulator's :class:`simulator.pty_server.SimulatedBoard`: the ASIC UART and the bitaxe-raw
control channel on two ptys, reached through stable symlinks (``<dir>/<name>-data``, ``<name>-control``) that
follow a replug. The daemon opens them exactly as it opens a real Bitaxe (serial transport, chain bring-up,
bitaxe-raw I2C to the emulated TPS546/EMC2101), so nothing here is on the data path.

Fault hooks (overheat, brown-out, unplug) let demos and system tests exercise the safety paths; emulated time
runs ``time_scale`` times faster than the host clock.

This is the daemon's one door to the emulator (docs/architecture.md §1): the emulated board's facts come from
:data:`simulator.board_spec.EMULATED_BOARD` and become the daemon's types here (:data:`SIM_CHAIN_TIMING`,
:data:`EMULATOR_LIMITS`, :attr:`SimBoard.valid_scale`); ``run --simulate``, the asic substrate and the live
service start emulated boards only through :func:`start_sim_boards`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from daemon.config import SafetyLimits, SimFault, SimulateConfig
from drivers.chain import ChainTiming
from drivers.transport.base import ReadBatch
from drivers.transport.loopback import LoopbackTransport
from simulator.board_spec import EMULATED_BOARD
from simulator.board_spec import BoardConfig as SimBoardConfig
from simulator.i2c_devices import linear11
from simulator.inproc_board import InProcessBoard
from simulator.plant import parse_plants
from simulator.pty_server import SimulatedBoard

log = logging.getLogger(__name__)

#: PMBus READ_VIN register of the emulated TPS546 (docs/protocol.md); the brown-out hook overrides its value.
READ_VIN = EMULATED_BOARD.read_vin_register
TPS546_ADDR = EMULATED_BOARD.tps546_address
#: Input voltage below which the emulated chain loses its state (chips back to reset, re-init needed), V.
CHAIN_LOST_BELOW_V = EMULATED_BOARD.chain_lost_below_v
#: Emulated board design (TPS546 regulator + EMC2101, like a Bitaxe Gamma).
SIM_BOARD_KIND = EMULATED_BOARD.kind
#: Chain bring-up timing for emulated boards: the emulator answers at once, so the waits can be short.
SIM_CHAIN_TIMING = ChainTiming(**EMULATED_BOARD.chain_timing())
#: Safety limits for modulating an emulated board: the default envelope but with frequency steps as fast as
#: the emulated PLL follows (a step per slot is the point of the experiment; on hardware the configured
#: limits apply unchanged).
EMULATOR_LIMITS = SafetyLimits(
    freq_step_rate_mhz_s=EMULATED_BOARD.freq_step_rate_mhz_s, cool_down_s=EMULATED_BOARD.cool_down_s
)


class SimBoard:
    """One emulated board: paths to open, the share-check scale and fault hooks."""

    def __init__(self, board: SimulatedBoard, link_dir: Path) -> None:
        self.board = board
        self.name = board.config.name
        self.data_link = link_dir / f"{self.name}-data"
        self.control_link = link_dir / f"{self.name}-control"
        self._vin: float | None = None
        dev = board.device.devices.get(TPS546_ADDR)
        if dev is not None:
            orig = dev.value  # type: ignore[attr-defined]

            def value(reg: int, t: float) -> bytes | None:
                if reg == READ_VIN and self._vin is not None:
                    return linear11(self._vin).to_bytes(2, "little")
                return orig(reg, t)  # type: ignore[no-any-return]

            dev.value = value  # type: ignore[attr-defined]

    @property
    def valid_scale(self) -> float:
        """A nonce is valid when its share difficulty >= ticket difficulty * this (the emulator's scale)."""
        return EMULATED_BOARD.valid_scale(self.board.config)

    def overheat(self, temp_c: float) -> None:
        """Force every chip to ``temp_c`` C (relaxes back with the emulated thermal time constant)."""
        self.board.inject({"kind": "overheat", "temp_c": temp_c})

    def brownout(self, vin_v: float | None) -> None:
        """Input supply reads ``vin_v`` (None = nominal); below 4.5 V the chain loses its state."""
        self._vin = vin_v
        if vin_v is not None and vin_v < CHAIN_LOST_BELOW_V:
            self.board.inject({"kind": "chip_reset"})

    def unplug(self) -> None:
        """The data pty goes away (the host sees a hang-up) and comes back at a new path behind the link."""
        self.board.inject({"kind": "disconnect", "mode": "reopen"})

    async def stop(self) -> None:
        await self.board.stop()


def check_plants(sim: SimulateConfig) -> None:
    """One-line ``ValueError`` for bad planted dynamics in ``sim`` (before anything starts)."""
    parse_plants(sim.plant, sim.plant_param)


async def start_sim_boards(
    n: int,
    directory: Path,
    sim: SimulateConfig,
    *,
    clock: Callable[[], int] = time.monotonic_ns,
    firehose_rate: float | None = None,
    record_truth: bool = False,
) -> list[SimBoard]:
    """Start ``n`` emulated boards (seeds ``sim.seed + i``) with their symlinks under ``directory``; with
    ``sim.truth_dir`` each writes its ground truth to ``<truth_dir>/<name>-truth.csv`` when stopped
    (``SimulatedBoard.write_truth``: modelled emission times and the host write time of every reply)."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    out = []
    for i in range(n):
        cfg = SimBoardConfig(
            chips=sim.chips,
            seed=sim.seed + i,
            speed=sim.time_scale,
            link=sim.link,
            board_kind=SIM_BOARD_KIND,
            raw_firmware=sim.raw_firmware,
            firehose_rate=firehose_rate,
            record_truth=record_truth or bool(sim.truth_dir),
            truth_path=str(Path(sim.truth_dir) / f"sim{i}-truth.csv") if sim.truth_dir else None,
            link_dir=str(directory),
            name=f"sim{i}",
            plants=parse_plants(sim.plant, sim.plant_param),
        )
        board = SimulatedBoard(cfg, clock=clock)
        await board.start()
        out.append(SimBoard(board, directory))
    return out


class _BoardEnd(LoopbackTransport):
    """The emulator's end of a loopback pair: what the host writes is fed to the board at once."""

    def __init__(self, feed: Callable[[bytes], None], clock: Callable[[], int], name: str) -> None:
        super().__init__(clock=clock, name=name)
        self._feed = feed

    def inject(self, data: bytes, t_host_ns: int | None = None) -> ReadBatch:
        self._feed(data)
        return ReadBatch(data, self._clock() if t_host_ns is None else t_host_ns, 0)


class InProcessSimBoard:
    """An emulated board inside the daemon's loop (``simulator.inproc_board``), reached through two loopback
    transports instead of ptys: the asic substrate's emulated-time mode (``daemon.virtual_time``)."""

    def __init__(self, sim: SimulateConfig, clock: Callable[[], int]) -> None:
        self.name = "sim0"
        cfg = SimBoardConfig(
            chips=sim.chips,
            seed=sim.seed,
            speed=1.0,
            link=sim.link,
            board_kind=SIM_BOARD_KIND,
            raw_firmware=sim.raw_firmware,
            name=self.name,
            plants=parse_plants(sim.plant, sim.plant_param),
        )
        self.data = LoopbackTransport(clock=clock, name=f"{self.name}-data")
        self.control = LoopbackTransport(clock=clock, name=f"{self.name}-control")
        self.board = InProcessBoard(cfg, clock, self.data.inject, self.control.inject)
        self.data.peer = _BoardEnd(self.board.feed_data, clock, f"{self.name}-data-board")
        self.control.peer = _BoardEnd(self.board.feed_control, clock, f"{self.name}-control-board")
        self.valid_scale = EMULATED_BOARD.valid_scale(cfg)

    def start(self) -> None:
        """Start the board on the running loop (its time 0 is now)."""
        self.board.start()

    def stop(self) -> None:
        self.board.stop()


async def inject_fault(
    boards: list[SimBoard],
    fault: SimFault,
    wait_up: Mapping[str, Callable[[], Awaitable[None]]] | None = None,
) -> None:
    """Apply ``fault`` to the named board (every board when unnamed) ``at_s`` s after its first bring-up
    (``wait_up``: board name -> wait for it), or after now without ``wait_up``. Counting from the bring-up
    keeps a fault meant for a running board from landing during a slow start (a busy host)."""
    targets = [b for b in boards if not fault.board or b.name == fault.board]
    for b in targets:
        if wait_up is not None and b.name in wait_up:
            await wait_up[b.name]()
    await asyncio.sleep(fault.at_s)
    for b in targets:
        log.warning(
            "emulator: injecting %s on %s (value %g, %g s)", fault.kind, b.name, fault.value, fault.duration_s
        )
        if fault.kind == "overheat":
            b.overheat(fault.value)
        elif fault.kind == "brownout":
            b.brownout(fault.value)
        else:
            b.unplug()
    if fault.kind == "brownout":
        await asyncio.sleep(fault.duration_s)
        for b in targets:
            b.brownout(None)
            log.warning("emulator: brownout on %s over", b.name)
