"""Serve an emulated board on two pseudo-terminals: the ASIC UART (data) and the bitaxe-raw control channel.

:class:`SimulatedBoard` owns a :class:`~simulator.chain.ChainCore`, a link model and a
:class:`~simulator.bitaxe_raw.BitaxeRawDevice`. Host bytes are fed to the core at the current simulated time;
replies are written to the data pty when the link model delivers them. Simulated time runs at ``speed`` times
the injected clock. The pty itself has no baud: the chain's baud (register 0x28) sets the link's line rate.

Punctuality: the next due reply is scheduled on a Linux ``timerfd`` the event loop watches, so writes land
within tens of microseconds of their modelled delivery time; asyncio's own timers round up to the 1 ms
resolution of ``epoll_wait`` (they are the fallback where ``timerfd`` is missing). Ground truth keeps the
modelled times (deterministic from the seed) and adds the host time each reply's last byte was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import math
import os
import random
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.bitaxe_raw import BitaxeRawDevice
from simulator.board_spec import BoardConfig
from simulator.faults import Fault, StreamFaults
from simulator.i2c_devices import TPS546D24A
from simulator.inproc_board import due_deliveries, make_core
from simulator.link import GroundTruth, make_link
from simulator.ptys import Pty, TimerFd

log = logging.getLogger(__name__)

#: Shortest gap (s, real time) between two scheduler wakes: a CPU guard at firehose rates, where replies
#: due within it of the previous wake are written together. A reply due later than that after the previous
#: wake is written at its own time. At 0.1 ms bench_emulator.py (4 overloaded firehose boards in one
#: process, load 9 on 2 cores) did not finish in 60 s; at 0.25 ms it did (figures: docs/emulator.md).
MIN_TICK_S = 0.00025
#: Longest scheduler sleep (s, real time) when nothing is due, so physics and time stay fresh.
MAX_IDLE_S = 0.05
#: Reply bytes held for a host that is not reading before the oldest are dropped (a UART overrun).
MAX_PENDING_OUT = 1 << 20
#: Linux TCGETS2 ioctl (struct termios2; c_ispeed/c_ospeed at byte offsets 36/40), as pyserial uses it.
TCGETS2 = 0x802C542A
#: Largest host/chain baud mismatch a UART tolerates (8N1 sampling mid-bit over 10 bits: ~5 %).
BAUD_TOLERANCE = 0.05


class SimulatedBoard:
    """One emulated board on ptys. ``await start()``, use ``data_path``/``control_path``, ``await stop()``."""

    def __init__(
        self, config: BoardConfig | None = None, clock: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self.config = cfg = config or BoardConfig()
        if cfg.speed <= 0:
            raise ValueError(f"speed must be > 0, got {cfg.speed}")
        self.clock = clock
        self.core = make_core(cfg)
        self.link = make_link(cfg.link, cfg.ftdi_latency_s, record=cfg.record_truth)
        self.device = BitaxeRawDevice(self.core, cfg.board_kind, cfg.raw_firmware)
        self.faults = StreamFaults(cfg.seed)
        self._garble_rng = random.Random(f"asicrc-garble:{cfg.seed}")
        self.garbled_bytes = 0
        self.t0_ns = 0
        self.reopen_count = 0
        self._data: Pty | None = None
        self._ctrl: Pty | None = None
        self._timer: TimerFd | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._last_tick_ns = 0
        self._write_ns: list[int] = []
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
        try:
            self._timer = TimerFd()
        except OSError as exc:  # not Linux: asyncio timers (1 ms granularity) instead
            log.debug("%s: no timerfd (%s); using asyncio timers", self.config.name, exc)
        else:
            self._loop.add_reader(self._timer.fd, self._on_timer)
        self._tick()

    async def stop(self) -> None:
        """Stop serving, close the ptys, write the ground truth file if one was asked for."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._timer is not None:
            assert self._loop is not None
            self._loop.remove_reader(self._timer.fd)
            self._timer.close()
            self._timer = None
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
        """Modelled emit / wire-end / delivery time (simulated s) of every reply (``record_truth`` only)."""
        return self.link.truth

    @property
    def write_ns(self) -> list[int]:
        """Per :attr:`ground_truth` row: the injected clock (ns) right after the ``os.write`` that put the
        reply's last byte into the pty; -1 if never (pending, dropped on overrun, silenced, reopened)."""
        w = self._write_ns
        return w + [-1] * (len(self.link.truth) - len(w))

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
        """Ground truth as CSV: ``emit_s,wire_end_s,deliver_s,frame_hex,write_ns`` (simulated s; write_ns is
        the host clock in ns after the reply's last byte was written to the pty, -1 if never)."""
        with open(path, "w", encoding="ascii") as f:
            f.write("emit_s,wire_end_s,deliver_s,frame_hex,write_ns\n")
            for g, w in zip(self.link.truth, self.write_ns, strict=True):
                f.write(f"{g.emit_s:.9f},{g.wire_end_s:.9f},{g.deliver_s:.9f},{g.frame.hex()},{w}\n")

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
        elif f.kind == "i2c_nack":
            self.device.nack_reads(f.addr, f.n)
        elif f.kind == "vr_latch":
            vr = self.device.devices.get(0x24)
            if not isinstance(vr, TPS546D24A):
                raise ValueError("vr_latch needs a board with a TPS546 regulator (gamma)")
            vr.latch(t)
        elif f.kind == "disconnect":
            if f.mode == "silence":
                self._silent_until = t + f.duration_s
            else:
                self._reopen()
                ack["data"] = self.data_path
        self._tick()
        return ack

    # ---- internals -------------------------------------------------------------------------------------
    def _open(self, cb: Callable[[], None]) -> Pty:
        p = Pty()
        assert self._loop is not None
        self._loop.add_reader(p.master, cb)
        return p

    def _close(self, p: Pty) -> None:
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

    def _read(self, p: Pty) -> bytes:
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
        self._tick()

    def _on_ctrl(self) -> None:
        p = self._ctrl
        if p is None:
            return
        data = self._read(p)
        if data:
            reply = self.device.feed(data, self.sim_now())
            if reply:
                self._write(p, reply)
            self._tick()

    def _pump(self) -> None:
        """Move due replies core -> faults -> link -> pty at the current simulated time."""
        t = self.sim_now()
        ready = due_deliveries(self.core, self.link, self.faults, t)
        p = self._data
        if ready and p is not None and t >= self._silent_until:
            end = p.queued
            for d in ready:
                end += len(d.data)
                if d.truth_hi > d.truth_lo:
                    p.marks.append((end, d.truth_lo, d.truth_hi))
            out = b"".join(d.data for d in ready)
            self._write(p, self._garble(out) if self.baud_mismatch() else out)

    def _write(self, p: Pty, data: bytes) -> None:
        p.out += data
        p.queued += len(data)
        if len(p.out) > MAX_PENDING_OUT:
            cut = len(p.out) - MAX_PENDING_OUT
            del p.out[:cut]
            p.dropped += cut
            self._written(p, cut, -1)
        self._flush(p)

    def _written(self, p: Pty, n: int, t_ns: int) -> None:
        """``n`` more bytes of ``p`` left the queue at ``t_ns`` (-1: dropped): stamp the replies they end."""
        p.done += n
        marks, w = p.marks, self._write_ns
        while marks and marks[0][0] <= p.done:
            _, lo, hi = marks.popleft()
            if t_ns < 0:
                continue
            if len(w) < hi:
                w.extend([-1] * (hi - len(w)))
            w[lo:hi] = [t_ns] * (hi - lo)

    def _flush(self, p: Pty) -> None:
        assert self._loop is not None
        try:
            # ground truth: the host time these bytes reached the pty, taken as the write starts (a reader on
            # another thread may read them before the write call returns here)
            t_ns = self.clock()
            n = os.write(p.master, p.out)
        except (BlockingIOError, InterruptedError):
            n = t_ns = 0
        except OSError as exc:  # host side gone in a way we cannot serve: drop, keep running
            log.debug("%s: write failed: %s", self.config.name, exc)
            n, t_ns = len(p.out), -1
        del p.out[:n]
        if n:
            self._written(p, n, t_ns)
        if p.out:
            self._loop.add_writer(p.master, self._flush, p)
        else:
            self._loop.remove_writer(p.master)

    def _on_timer(self) -> None:
        assert self._timer is not None
        self._timer.drain()
        self._tick()

    def _tick(self) -> None:
        """Write what is due now, then arm the wake for the next due reply or chip event (real time)."""
        self._pump()
        now_ns = time.monotonic_ns()
        earliest = self._last_tick_ns + round(MIN_TICK_S * 1e9)
        self._last_tick_ns = now_ns
        if self._loop is None or self._data is None:
            return
        nxt = min(self.core.next_event_time(), self.link.next_delivery())
        delay_s = min(max((nxt - self.sim_now()) / self.config.speed, 0.0), MAX_IDLE_S)
        deadline = max(now_ns + math.ceil(delay_s * 1e9), earliest)
        if self._timer is not None:
            self._timer.arm(deadline)
        else:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._loop.call_at(deadline / 1e9, self._tick)
