"""Serve an emulated board on two pseudo-terminals: the ASIC UART (data) and the bitaxe-raw control channel.

:class:`SimulatedBoard` owns a :class:`~simulator.chain.ChainCore`, a link model and a
:class:`~simulator.bitaxe_raw.BitaxeRawDevice`. Host bytes are fed to the core at the current simulated time;
replies are written to the data pty when the link model delivers them. Simulated time runs at ``speed`` times
the injected clock. The pty itself has no baud: the chain's baud (register 0x28) sets the link's line rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import random
import struct
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.bitaxe_raw import BitaxeRawDevice
from simulator.chain import ChainCore, Knobs
from simulator.faults import Fault, StreamFaults
from simulator.link import FTDI_LATENCY_S, GroundTruth, make_link
from simulator.mining import DEFAULT_DIFFICULTY_SCALE
from simulator.physics import PhysicsParams

log = logging.getLogger(__name__)

#: Shortest scheduler sleep (s, real time): deliveries due within it are written together. Bounds the
#: emulator's own write lateness (and CPU use at high reply rates); measured against ground truth in tests.
MIN_TICK_S = 0.0005
#: Longest scheduler sleep (s, real time) when nothing is due, so physics and time stay fresh.
MAX_IDLE_S = 0.05
#: Reply bytes held for a host that is not reading before the oldest are dropped (a UART overrun).
MAX_PENDING_OUT = 1 << 20
#: Linux TCGETS2 ioctl (struct termios2; c_ispeed/c_ospeed at byte offsets 36/40), as pyserial uses it.
TCGETS2 = 0x802C542A
#: Largest host/chain baud mismatch a UART tolerates (8N1 sampling mid-bit over 10 bits: ~5 %).
BAUD_TOLERANCE = 0.05


@dataclass
class BoardConfig:
    """Everything that defines one emulated board (all reproducible from ``seed``)."""

    chips: int = 1
    seed: int = 0
    speed: float = 1.0
    link: str = "ideal"
    board_kind: str = "gamma"
    difficulty_scale: float = DEFAULT_DIFFICULTY_SCALE
    firehose_rate: float | None = None
    knobs: Knobs = field(default_factory=Knobs)
    params: PhysicsParams = field(default_factory=PhysicsParams)
    ftdi_latency_s: float = FTDI_LATENCY_S
    record_truth: bool = False
    truth_path: str | None = None
    link_dir: str | None = None
    name: str = "board0"
    #: Garble bytes both ways while the host's pty speed (as set by e.g. pyserial) differs from the chain's
    #: baud by more than 5 %, like a real UART. Off by default: a pty opened raw reports 38400 baud.
    check_baud: bool = False


class _Pty:
    """One pty pair; we keep the slave open so the host may close and reopen it freely."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.out = bytearray()
        self.dropped = 0

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class SimulatedBoard:
    """One emulated board on ptys. ``await start()``, use ``data_path``/``control_path``, ``await stop()``."""

    def __init__(
        self, config: BoardConfig | None = None, clock: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self.config = cfg = config or BoardConfig()
        if cfg.speed <= 0:
            raise ValueError(f"speed must be > 0, got {cfg.speed}")
        self.clock = clock
        self.core = ChainCore(
            chips=cfg.chips,
            seed=cfg.seed,
            params=cfg.params,
            knobs=cfg.knobs,
            difficulty_scale=cfg.difficulty_scale,
            firehose_rate=cfg.firehose_rate,
        )
        self.link = make_link(cfg.link, cfg.ftdi_latency_s, record=cfg.record_truth)
        self.device = BitaxeRawDevice(self.core, cfg.board_kind)
        self.faults = StreamFaults(cfg.seed)
        self._garble_rng = random.Random(f"asicrc-garble:{cfg.seed}")
        self.garbled_bytes = 0
        self.t0_ns = 0
        self.reopen_count = 0
        self._data: _Pty | None = None
        self._ctrl: _Pty | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._silent_until = -1.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_reopen: list[Callable[[str], None]] = []

    # ---- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the ptys and start serving."""
        self._loop = asyncio.get_running_loop()
        self.t0_ns = self.clock()
        self._data = self._open(self._on_data)
        self._ctrl = self._open(self._on_ctrl)
        self._update_links()
        self._task = asyncio.create_task(self._run(), name=f"sim-{self.config.name}")

    async def stop(self) -> None:
        """Stop serving, close the ptys, write the ground truth file if one was asked for."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for p in (self._data, self._ctrl):
            if p is not None:
                self._close(p)
        self._data = self._ctrl = None
        if self.config.truth_path:
            self.write_truth(self.config.truth_path)
        if self.config.link_dir:
            for suffix in ("data", "control"):
                with contextlib.suppress(OSError):
                    os.unlink(Path(self.config.link_dir) / f"{self.config.name}-{suffix}")

    async def __aenter__(self) -> SimulatedBoard:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- public state ---------------------------------------------------------------------------------
    @property
    def data_path(self) -> str:
        """Path of the ASIC UART pty (changes after a ``disconnect`` with mode ``reopen``)."""
        assert self._data is not None, "board not started"
        return self._data.path

    @property
    def control_path(self) -> str:
        """Path of the bitaxe-raw control pty."""
        assert self._ctrl is not None, "board not started"
        return self._ctrl.path

    @property
    def ground_truth(self) -> list[GroundTruth]:
        """Exact emit / wire-end / delivery time (simulated s) of every reply (``record_truth`` only)."""
        return self.link.truth

    def sim_now(self) -> float:
        """Simulated seconds since start."""
        return (self.clock() - self.t0_ns) / 1e9 * self.config.speed

    def host_ns(self, sim_s: float) -> int:
        """The injected clock's value (ns) at simulated time ``sim_s``: maps ground truth onto host stamps."""
        return self.t0_ns + round(sim_s / self.config.speed * 1e9)

    def info(self) -> dict[str, Any]:
        """Paths and settings as printed by ``asicrc sim``."""
        out: dict[str, Any] = {"name": self.config.name, "data": self.data_path, "control": self.control_path}
        if self.config.link_dir:
            out["data_link"] = str(Path(self.config.link_dir) / f"{self.config.name}-data")
            out["control_link"] = str(Path(self.config.link_dir) / f"{self.config.name}-control")
        return out

    def host_baud(self) -> int | None:
        """Output speed the host set on the data pty (baud), or None when it cannot be read."""
        if self._data is None:
            return None
        try:
            raw = fcntl.ioctl(self._data.slave, TCGETS2, bytes(44))
        except OSError:
            return None
        speed = struct.unpack_from("<I", raw, 40)[0]
        return int(speed) or None

    def baud_mismatch(self) -> bool:
        """True when ``check_baud`` is on and host and chain speeds differ by more than 5 %."""
        if not self.config.check_baud:
            return False
        host = self.host_baud()
        return host is not None and abs(host / self.core.baud - 1.0) > BAUD_TOLERANCE

    def _garble(self, data: bytes) -> bytes:
        self.garbled_bytes += len(data)
        return self._garble_rng.randbytes(len(data))

    def write_truth(self, path: str) -> None:
        """Ground truth as CSV: ``emit_s,wire_end_s,deliver_s,frame_hex``."""
        with open(path, "w", encoding="ascii") as f:
            f.write("emit_s,wire_end_s,deliver_s,frame_hex\n")
            for g in self.link.truth:
                f.write(f"{g.emit_s:.9f},{g.wire_end_s:.9f},{g.deliver_s:.9f},{g.frame.hex()}\n")

    # ---- faults ----------------------------------------------------------------------------------------
    def inject(self, fault: Fault | dict[str, Any]) -> dict[str, Any]:
        """Apply a fault now; returns a JSON-able acknowledgement (with the new data path after a reopen)."""
        f = Fault.from_dict(fault) if isinstance(fault, dict) else fault
        t = self.sim_now()
        core = self.core
        ack: dict[str, Any] = {"ok": True, "kind": f.kind, "board": self.config.name, "t": t}
        if f.kind in ("garbage", "crc_error", "drop_bytes"):
            self.faults.add(f)
        elif f.kind == "stuck_chip":
            assert f.chip is not None
            core.stick_chip(f.chip, f.on, t)
        elif f.kind == "chip_reset":
            core.reset_chip(f.chip, t)
        elif f.kind == "overheat":
            core.overheat(f.temp_c, f.chip, t)
        elif f.kind == "disconnect":
            if f.mode == "silence":
                self._silent_until = t + f.duration_s
            else:
                self._reopen()
                ack["data"] = self.data_path
        self._pump()
        self._wake.set()
        return ack

    # ---- internals -------------------------------------------------------------------------------------
    def _open(self, cb: Callable[[], None]) -> _Pty:
        p = _Pty()
        assert self._loop is not None
        self._loop.add_reader(p.master, cb)
        return p

    def _close(self, p: _Pty) -> None:
        assert self._loop is not None
        self._loop.remove_reader(p.master)
        self._loop.remove_writer(p.master)
        p.close()

    def _reopen(self) -> None:
        assert self._data is not None
        self._close(self._data)
        self.link.clear()
        self._data = self._open(self._on_data)
        self.reopen_count += 1
        self._update_links()
        log.info("%s: data pty reopened at %s", self.config.name, self._data.path)
        for cb in self.on_reopen:
            cb(self._data.path)

    def _update_links(self) -> None:
        d = self.config.link_dir
        if not d or self._data is None or self._ctrl is None:
            return
        Path(d).mkdir(parents=True, exist_ok=True)
        for suffix, target in (("data", self._data.path), ("control", self._ctrl.path)):
            link = Path(d) / f"{self.config.name}-{suffix}"
            tmp = link.with_suffix(".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(target, tmp)
            os.replace(tmp, link)

    def _read(self, p: _Pty) -> bytes:
        try:
            return os.read(p.master, 65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def _on_data(self) -> None:
        p = self._data
        if p is None:
            return
        data = self._read(p)
        t = self.sim_now()
        if not data or t < self._silent_until:
            return
        if self.baud_mismatch():
            data = self._garble(data)
        self.core.feed(data, t)
        self._pump()
        self._wake.set()

    def _on_ctrl(self) -> None:
        p = self._ctrl
        if p is None:
            return
        data = self._read(p)
        if data:
            reply = self.device.feed(data, self.sim_now())
            if reply:
                self._write(p, reply)
            self._pump()
            self._wake.set()

    def _pump(self) -> None:
        """Move due replies core -> faults -> link -> pty at the current simulated time."""
        t = self.sim_now()
        core, link, faults = self.core, self.link, self.faults
        for te, frame in core.advance(t):
            if not faults.idle:
                junk = faults.take_garbage()
                if junk:
                    link.push(te, junk, core.baud)
                frame = faults.apply(frame)
                if not frame:
                    continue
            link.push(te, frame, core.baud)
        if faults.garbage:
            link.push(t, faults.take_garbage(), core.baud)
        ready = link.pop_ready(t)
        if ready and self._data is not None and t >= self._silent_until:
            out = b"".join(d.data for d in ready)
            self._write(self._data, self._garble(out) if self.baud_mismatch() else out)

    def _write(self, p: _Pty, data: bytes) -> None:
        p.out += data
        if len(p.out) > MAX_PENDING_OUT:
            cut = len(p.out) - MAX_PENDING_OUT
            del p.out[:cut]
            p.dropped += cut
        self._flush(p)

    def _flush(self, p: _Pty) -> None:
        assert self._loop is not None
        try:
            n = os.write(p.master, p.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:  # host side gone in a way we cannot serve: drop, keep running
            log.debug("%s: write failed: %s", self.config.name, exc)
            n = len(p.out)
        del p.out[:n]
        if p.out:
            self._loop.add_writer(p.master, self._flush, p)
        else:
            self._loop.remove_writer(p.master)

    async def _run(self) -> None:
        speed = self.config.speed
        while True:
            self._pump()
            now = self.sim_now()
            nxt = min(self.core.next_event_time(), self.link.next_delivery())
            delay = min(max((nxt - now) / speed, MIN_TICK_S), MAX_IDLE_S)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
