"""An emulated board served inside the host's event loop, on the loop's own clock: no pty, no thread.

:class:`InProcessBoard` is :class:`~simulator.pty_server.SimulatedBoard` without the pseudo-terminals: the
host hands it bytes with :meth:`feed_data` / :meth:`feed_control` and receives the chain's replies (when the
link model delivers them) and the bitaxe-raw replies through two callbacks. Every wake is an ``asyncio``
timer at the reply's modelled delivery time, so on an emulated-time loop (``daemon.virtual_time``) a reply
reaches the host at exactly its modelled time and a run is a function of its seed and its inputs. The wire
protocol is the same bytes as on the ptys (the host side is the daemon's own driver stack); simulated time is
the loop's time (``speed`` 1). Fault injection and the baud check are the pty server's, not offered here.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from simulator.bitaxe_raw import BitaxeRawDevice
from simulator.board_spec import BoardConfig
from simulator.chain import ChainCore
from simulator.faults import StreamFaults
from simulator.link import Delivery, IdealLink, make_link

#: Longest wait (s, simulated) between wakes when nothing is due, so physics and time stay fresh.
MAX_IDLE_S = 0.05


def make_core(cfg: BoardConfig) -> ChainCore:
    """The chip chain of an emulated board as ``cfg`` defines it."""
    return ChainCore(
        chips=cfg.chips,
        seed=cfg.seed,
        params=cfg.params,
        knobs=cfg.knobs,
        difficulty_scale=cfg.difficulty_scale,
        firehose_rate=cfg.firehose_rate,
        firehose_needs_job=cfg.firehose_needs_job,
        plants=cfg.plants,
    )


def due_deliveries(core: ChainCore, link: IdealLink, faults: StreamFaults, t: float) -> list[Delivery]:
    """Replies emitted by ``t`` (s) through stream faults onto the link; returns its deliveries by ``t``."""
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
    return link.pop_ready(t)


class InProcessBoard:
    """One emulated board on callbacks (module docstring). ``start()``, feed bytes, ``stop()``.

    ``clock``: the loop's clock in ns (emulated time); ``send_data`` / ``send_control``: called with the bytes
    the host receives on the ASIC UART / the bitaxe-raw channel.
    """

    def __init__(
        self,
        config: BoardConfig,
        clock: Callable[[], int],
        send_data: Callable[[bytes], object],
        send_control: Callable[[bytes], object],
    ) -> None:
        self.config = cfg = config
        self.clock = clock
        self.core = make_core(cfg)
        self.link = make_link(cfg.link, cfg.ftdi_latency_s, record=cfg.record_truth)
        self.device = BitaxeRawDevice(self.core, cfg.board_kind, cfg.raw_firmware)
        self.faults = StreamFaults(cfg.seed)
        self._send_data = send_data
        self._send_control = send_control
        self.t0_ns = 0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start serving at the loop's current time (must be called on the loop)."""
        self._loop = asyncio.get_running_loop()
        self.t0_ns = self.clock()
        self._tick()

    def stop(self) -> None:
        """Stop serving (no more wakes, no more replies)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._loop = None

    def sim_now(self) -> float:
        """Simulated seconds since start."""
        return (self.clock() - self.t0_ns) / 1e9

    def feed_data(self, data: bytes) -> None:
        """Host bytes on the ASIC UART, arriving now."""
        if self._loop is None:
            return
        self.core.feed(data, self.sim_now())
        self._tick()

    def feed_control(self, data: bytes) -> None:
        """Host bytes on the bitaxe-raw channel, arriving now; its reply goes out at once."""
        if self._loop is None:
            return
        reply = self.device.feed(data, self.sim_now())
        if reply:
            self._send_control(reply)
        self._tick()

    def _tick(self) -> None:
        """Deliver what is due now, then wake at the next due reply or chip event."""
        if self._loop is None:
            return
        t = self.sim_now()
        ready = due_deliveries(self.core, self.link, self.faults, t)
        if ready:
            self._send_data(b"".join(d.data for d in ready))
        nxt = min(self.core.next_event_time(), self.link.next_delivery())
        # whole ns and at least 1: time must move between wakes (the chain's physics grid advances only past
        # a grid point, and a wake rounded a fraction of a ns early would find nothing due), else the board
        # would ask again and again for the same instant
        delay_s = min(max(math.ceil((nxt - t) * 1e9), 1) / 1e9, MAX_IDLE_S)
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(self._loop.time() + delay_s, self._tick)
