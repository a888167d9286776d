"""State sources of the live service: one input step on a board -> its state row.

:class:`SubstrateSource` steps an :class:`~reservoir.asic.AsicReservoir` over a synchronous substrate (a
:class:`~daemon.substrate.BoardSubstrate`: its own supervised board or an emulated one) in a worker thread;
:class:`PlanSource` steps the daemon's own board through the ``modulate`` plan
(:func:`daemon.plans.run_modulate`) and cuts the board's events into sub-slots with
:func:`daemon.events.event_slots` (the one slot rule of :mod:`reservoir.windows`). Setpoints reach the board
only through the safety envelope in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import numpy as np

from daemon.events import Pipeline, event_slots
from daemon.live.model import LiveParams
from daemon.plans import PlanTarget, run_modulate
from reservoir.asic import slot_states
from reservoir.features import FEATURES
from reservoir.substrate import Substrate

#: Wait after the last sub-slot for replies still on the wire (s; ~ a batch interval of the supervisor).
PLAN_TAIL_S = 0.15


class StateSource(Protocol):
    """Runs one input step on a board and returns its state row (state_dim,)."""

    async def step(self, x: float) -> np.ndarray:
        """``x`` is the input already scaled to [-1, 1]."""
        ...


class SubstrateSource:
    """Steps an :class:`AsicReservoir` over a synchronous :class:`Substrate` in a worker thread (a
    :class:`~daemon.substrate.BoardSubstrate` runs its own supervised board behind the safety envelope)."""

    def __init__(self, params: LiveParams, substrate: Substrate) -> None:
        self.reservoir = params.reservoir(substrate)
        self.state_dim = self.reservoir.state_dim
        self._busy = threading.Lock()

    async def step(self, x: float) -> np.ndarray:
        # One step at a time: a step abandoned by a timeout keeps the substrate until it returns. The step
        # runs in a daemon thread (not the default executor, whose threads are joined at interpreter exit,
        # so a board that never answers cannot keep the process from ending).
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("substrate still busy with an abandoned step")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()

        def deliver(value: np.ndarray | None, exc: BaseException | None) -> None:
            if fut.done():  # abandoned (timeout or cancel)
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)  # type: ignore[arg-type]

        def work() -> None:
            value, exc = None, None
            try:
                value = np.asarray(self.reservoir.run(np.array([[x]]))[0])
            except BaseException as e:  # handed to the awaiting task
                exc = e
            finally:
                self._busy.release()
            with contextlib.suppress(RuntimeError):  # the loop may be closed by now
                loop.call_soon_threadsafe(deliver, value, exc)

        threading.Thread(target=work, name="asicrc-live-step", daemon=True).start()
        return await fut


class PlanSource:
    """Steps the daemon's own board through the ``modulate`` plan (:func:`run_modulate`, every setpoint via
    ``target.request`` and so the safety gate), windowing the board's events from ``pipeline``."""

    def __init__(
        self,
        params: LiveParams,
        target: PlanTarget,
        pipeline: Pipeline,
        *,
        voltage_v: float = 1.2,
        ticket_diff: float = 1.0,
        clock: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tail_s: float = PLAN_TAIL_S,
    ) -> None:
        self.params = params
        self.target = target
        self.pipeline = pipeline
        self.voltage_v = voltage_v
        self.ticket_diff = ticket_diff
        self.clock = clock
        self.sleep = sleep
        self.tail_s = tail_s
        self.state_dim = params.n_sub * target.chips * len(FEATURES)
        #: Sub-slot starts (ns, the plan's clock) of the last step.
        self.last_starts_ns = np.zeros(0, dtype=np.int64)
        self._steps = 0

    async def step(self, x: float) -> np.ndarray:
        p = self.params
        freqs = p.setpoints(x)
        levels = ((freqs - p.f_min) / (p.f_max - p.f_min))[None, :]
        self._steps += 1
        name = f"live-{id(self)}-{self._steps}"
        sub = self.pipeline.subscribe(name, maxsize=100_000, logs=False)
        try:
            starts = await run_modulate(
                levels,
                self.target,
                symbol_period_s=p.n_sub * p.slot_ns / 1e9,
                freq_lo_mhz=p.f_min,
                freq_hi_mhz=p.f_max,
                voltage_v=self.voltage_v,
                ticket_diff=self.ticket_diff,
                name="live",
                clock=self.clock,
                sleep=self.sleep,
            )
            await self.sleep(self.tail_s)
            batches = sub.drain()
        finally:
            self.pipeline.unsubscribe(name)
        state = getattr(self.target, "state", None)
        temp = getattr(state, "chip_temp_c", None)
        n_chips = self.target.chips
        self.last_starts_ns = np.asarray(starts[0], dtype=np.int64)
        slots = event_slots(batches, starts[0], p.slot_ns, n_chips, math.nan if temp is None else temp)
        return np.asarray(slot_states(slots, 1, p.n_sub, n_chips, p.slot_ns)[0])
