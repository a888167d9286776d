"""Emulated boards for ``asicrc run --simulate N``: the simulator's chain on a pty, driven like hardware.

Each :class:`PtySimBoard` serves a :class:`simulator.chain.ChainCore` (the emulated BM1366 chain) on a pty
pair: the daemon opens a stable symlink to the pty's slave end with the ordinary serial transport, so the
data path (transport, chain bring-up, vectorised decoder, timestamps) is the hardware one. A
:class:`SimControl` stands in for the board's control channel (core voltage, fan, reset line, sensors).
Fault hooks (overheat, brown-out, unplug) let system tests and demos exercise the safety paths.

Emulated time runs ``time_scale`` times faster than the host's monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pty
import time
import tty
from collections.abc import Callable
from pathlib import Path

import numpy as np

from daemon.config import SimulateConfig
from daemon.safety import Telemetry
from simulator.chain import ChainCore
from simulator.link import IdealLink, make_link

log = logging.getLogger(__name__)

#: Longest the emitter sleeps between checks (host s): bounds reply latency added by the emulator loop.
MAX_EMIT_SLEEP_S = 0.002
#: Input voltage of a healthy emulated board (V; a 5 V barrel supply as on Bitaxe boards).
NOMINAL_VIN_V = 5.0
#: Regulator temperature model: ambient + this many C per W of chain power (assumption, Bitaxe-class VR).
VR_C_PER_W = 2.0


class SimResetLine:
    """The ASIC reset line of an emulated board (held = chips silent, back to reset state)."""

    def __init__(self, board: PtySimBoard) -> None:
        self._board = board

    @property
    def has_reset(self) -> bool:
        return True

    async def set_reset(self, asserted: bool) -> None:
        self._board.core.set_reset_line(not asserted, self._board.sim_t())


class SimControl:
    """:class:`daemon.supervisor.BoardControl` of an emulated board."""

    def __init__(self, board: PtySimBoard) -> None:
        self._board = board
        self.reset_line = SimResetLine(board)
        self.voltage_log: list[float] = []
        self.vin_v = NOMINAL_VIN_V

    async def set_core_voltage(self, volts: float) -> None:
        b = self._board
        t = b.sim_t()
        self.voltage_log.append(volts)
        if volts <= 0.0:
            b.core.set_power(False, t)
        else:
            b.core.set_voltage(volts, t)
            b.core.set_power(True, t)

    async def set_fan(self, pct: float) -> None:
        self._board.core.set_fan(pct / 100.0, self._board.sim_t())

    async def read_telemetry(self) -> Telemetry:
        core = self._board.core
        core.advance(self._board.sim_t())
        phys = core.physics
        power = float(np.sum(phys.power_w(np.array([c.freq_hz for c in core.chips]))))
        return Telemetry(
            chip_temp_c=float(np.max(phys.temp_c)),
            regulator_temp_c=phys.params.ambient_c + VR_C_PER_W * power,
            power_w=power,
            input_voltage_v=self.vin_v,
        )


class PtySimBoard:
    """One emulated chain on a pty, reachable at :attr:`path` (a symlink that survives replugs)."""

    def __init__(
        self,
        name: str,
        link_path: Path,
        *,
        chips: int = 1,
        seed: int = 0,
        time_scale: float = 1.0,
        link: str = "ideal",
        firehose_rate: float | None = None,
        record_truth: bool = False,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.name = name
        self.path = Path(link_path)
        self.time_scale = time_scale
        self._clock = clock
        self._t0 = clock()
        self.core = ChainCore(chips=chips, seed=seed, firehose_rate=firehose_rate)
        self.link: IdealLink = make_link(link, record=record_truth)
        self.control = SimControl(self)
        self._master = -1
        self._slave = -1
        self._task: asyncio.Task[None] | None = None
        self._outbuf = bytearray()
        self.bytes_out = 0
        self.frames_out = 0

    @property
    def valid_scale(self) -> float:
        """Multiply the ticket difficulty by this for the share-check threshold (the emulator's scale)."""
        return float(self.core.difficulty_scale)

    def sim_t(self) -> float:
        """Emulated time (s) now."""
        return (self._clock() - self._t0) / 1e9 * self.time_scale

    def host_ns(self, sim_s: float) -> int:
        """Host monotonic ns of emulated time ``sim_s``."""
        return self._t0 + int(sim_s / self.time_scale * 1e9)

    # ------------------------------------------------------------------ pty lifecycle

    async def start(self) -> None:
        """Open the pty, point :attr:`path` at it and start serving."""
        self.plug()
        self._task = asyncio.create_task(self._emit_loop(), name=f"sim-{self.name}")

    def plug(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.path.with_name(self.path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)
        asyncio.get_running_loop().add_reader(master, self._on_host_bytes)
        self._outbuf.clear()

    def unplug(self) -> None:
        """Close the pty (the host sees EIO/hang-up) and remove the symlink."""
        if self._master < 0:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._master)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.link.clear()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.unplug()

    # ------------------------------------------------------------------ data

    def _on_host_bytes(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError:
            return  # the host closed its end; keep the pty for the next open
        if data:
            self.core.feed(data, self.sim_t())

    async def _emit_loop(self) -> None:
        core, link = self.core, self.link
        while True:
            t = self.sim_t()
            for te, data in core.advance(t):
                link.push(te, data, core.baud)
            out = [d.data for d in link.pop_ready(t)]
            if out and self._master >= 0:
                chunk = b"".join(out)
                self.frames_out += len(out)
                self._write(chunk)
            elif self._outbuf and self._master >= 0:
                self._write(b"")
            nxt = min(core.next_event_time(), link.next_delivery())
            delay = (nxt - self.sim_t()) / self.time_scale
            await asyncio.sleep(min(max(delay, 0.0), MAX_EMIT_SLEEP_S))

    def _write(self, data: bytes) -> None:
        buf = self._outbuf
        buf += data
        try:
            n = os.write(self._master, buf)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADF):
                buf.clear()
                return
            raise
        self.bytes_out += n
        del buf[:n]
        if len(buf) > 1 << 20:  # nobody reading: a real UART would drop these bytes too
            buf.clear()

    # ------------------------------------------------------------------ faults

    def overheat(self, temp_c: float) -> None:
        """Force every chip to ``temp_c`` (relaxes back with the thermal time constant)."""
        self.core.overheat(temp_c, None, self.sim_t())

    def brownout(self, vin_v: float) -> None:
        """Input supply at ``vin_v``; below the chips' floor the chain loses its state (re-init needed)."""
        self.control.vin_v = vin_v
        if vin_v < 4.5:
            self.core.reset_chip(None, self.sim_t())


async def start_sim_boards(n: int, directory: Path, sim: SimulateConfig, **kw: object) -> list[PtySimBoard]:
    """Start ``n`` emulated boards with symlinks ``<directory>/sim<i>``."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    boards = []
    for i in range(n):
        b = PtySimBoard(
            f"sim{i}",
            directory / f"sim{i}",
            chips=sim.chips,
            seed=sim.seed + i,
            time_scale=sim.time_scale,
            **kw,  # type: ignore[arg-type]
        )
        await b.start()
        boards.append(b)
    return boards
