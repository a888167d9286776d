"""Plans (experiments): ``sweep`` over (voltage, frequency, ticket difficulty) points, ``modulate`` setpoints
from an input sequence (the hardware-in-the-loop reservoir), and ``hold`` one setpoint.

Plans talk to a board only through :class:`PlanTarget` (the supervisor implements it), so every setpoint they
ask for passes the safety gate. The run order is in :mod:`daemon.plan_points`, per-point results in
:mod:`daemon.plan_summary`, saved sweep progress in :mod:`daemon.plan_progress`; this module runs plans.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import Protocol

import numpy as np

from daemon.config import PlanConfig
from daemon.plan_points import SweepPoint, fingerprint, modulation_levels, sweep_points
from daemon.plan_progress import ProgressStore, SweepProgress
from daemon.plan_summary import PointAccumulator, PointSummary, summarize
from daemon.safety import Decision, Setpoint

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class PlanTarget(Protocol):
    """What a plan needs from a board (implemented by the supervisor)."""

    name: str
    chips: int
    nonce_scale: float

    def request(self, sp: Setpoint, point: int) -> Decision:
        """Ask for a setpoint (through the safety gate); ``point`` is recorded with each event."""
        ...

    async def wait_ready(self) -> None:
        """Wait until the board is in normal mode, connected, and the ramp has reached the target."""
        ...

    def open_window(self) -> PointAccumulator:
        """Start counting events and telemetry into a new accumulator."""
        ...

    def close_window(self, acc: PointAccumulator) -> None:
        """Stop counting into ``acc``."""
        ...

    def progress(self, name: str, kind: str, i: int, n: int, eta_s: float | None) -> None:
        """Report progress (DaemonState and log)."""
        ...

    def summary(self, plan: str, s: PointSummary) -> None:
        """A finished sweep point (recorded in the log, published to MQTT)."""
        ...


async def run_sweep(
    plan: PlanConfig, target: PlanTarget, store: ProgressStore | None, *, sleep: Sleep = asyncio.sleep
) -> list[PointSummary]:
    """Run (or resume) a sweep on one board; returns the summaries of the points run now."""
    points = sweep_points(plan)
    fp = fingerprint(points)
    prog = (
        store.load(plan.name, target.name, fp, len(points)) if store else SweepProgress(plan.name, "", fp, 0)
    )
    prog.total = len(points)
    if prog.done:
        log.warning(
            "plan %s on %s: resuming at point %d/%d", plan.name, target.name, prog.done + 1, prog.total
        )
    per_point = plan.settle_s + plan.dwell_s
    out: list[PointSummary] = []
    for pt in points[prog.done :]:
        eta = (prog.total - prog.done) * per_point
        target.progress(plan.name, "sweep", prog.done, prog.total, eta)
        log.info(
            "plan %s on %s: point %d/%d  %.3f V  %.1f MHz  diff %g",
            plan.name,
            target.name,
            pt.index + 1,
            prog.total,
            pt.voltage_v,
            pt.freq_mhz,
            pt.ticket_diff,
        )
        while (d := target.request(pt.setpoint, pt.index)).outcome == "refused":
            await target.wait_ready()  # tripped: wait for the board to come back, then ask again
        ran = pt
        if d.outcome == "clamped" and d.applied is not None:
            a = d.applied
            ran = SweepPoint(pt.index, a.voltage_v, a.freq_mhz, a.ticket_diff, pt.repeat)
            log.warning(
                "plan %s on %s: point %d clamped (%s)", plan.name, target.name, pt.index + 1, d.reason
            )
        await target.wait_ready()
        await sleep(plan.settle_s)
        acc = target.open_window()
        try:
            await sleep(plan.dwell_s)
        finally:
            target.close_window(acc)
        summ = summarize(ran, acc, plan.dwell_s, target.chips, target.nonce_scale)
        if ran is not pt:
            summ = replace(summ, clamped=d.reason)
        target.summary(plan.name, summ)
        out.append(summ)
        prog.summaries.append(asdict(summ))
        prog.done += 1
        if store:
            store.save(prog)
        log.info(
            "plan %s on %s: point %d done: %d nonces, %.2f/s (expected %.2f/s), invalid %.1f %%%s",
            plan.name,
            target.name,
            pt.index + 1,
            summ.nonces,
            summ.nonce_rate_hz,
            summ.expected_rate_hz,
            100.0 * summ.invalid_fraction,
            f", {summ.j_per_th:.1f} J/TH" if summ.j_per_th is not None else "",
        )
    target.progress(plan.name, "sweep", prog.done, prog.total, 0.0)
    return out


async def run_modulate(
    levels: np.ndarray,
    target: PlanTarget,
    *,
    symbol_period_s: float,
    freq_lo_mhz: float,
    freq_hi_mhz: float,
    voltage_v: float,
    ticket_diff: float,
    name: str = "modulate",
    clock: Callable[[], int] = time.monotonic_ns,
    sleep: Sleep = asyncio.sleep,
) -> np.ndarray:
    """Drive frequency = lo + level * (hi - lo) for each sub-slot on an absolute schedule (no drift).

    Returns the start time (ns, ``clock``) of every sub-slot, shape (symbols, sub_slots), so events can be
    windowed per slot; the slot index ``k * sub_slots + j`` is recorded as the event ``point``.
    """
    n_sym, n_sub = levels.shape
    slot_ns = int(symbol_period_s * 1e9 / n_sub)
    starts = np.zeros((n_sym, n_sub), dtype=np.int64)
    await target.wait_ready()
    t0 = clock()
    for k in range(n_sym):
        if k % max(1, n_sym // 20) == 0:
            target.progress(name, "modulate", k, n_sym, (n_sym - k) * symbol_period_s)
        for j in range(n_sub):
            due = t0 + (k * n_sub + j) * slot_ns
            delay = (due - clock()) / 1e9
            if delay > 0:
                await sleep(delay)
            f = freq_lo_mhz + float(levels[k, j]) * (freq_hi_mhz - freq_lo_mhz)
            starts[k, j] = clock()
            target.request(Setpoint(voltage_v, f, ticket_diff), k * n_sub + j)
    end_delay = (t0 + n_sym * n_sub * slot_ns - clock()) / 1e9
    if end_delay > 0:
        await sleep(end_delay)
    target.progress(name, "modulate", n_sym, n_sym, 0.0)
    return starts


async def run_hold(plan: PlanConfig, target: PlanTarget, *, sleep: Sleep = asyncio.sleep) -> None:
    """Hold one setpoint for ``duration_s`` (0 = until cancelled); it is the plan's one point, index 0."""
    sp = Setpoint(plan.hold_voltage_v, plan.hold_freq_mhz, plan.hold_ticket_diff)
    while target.request(sp, 0).outcome == "refused":
        await target.wait_ready()
    target.progress(plan.name, "hold", 0, 1, plan.duration_s or None)
    if plan.duration_s > 0:
        await sleep(plan.duration_s)
    else:
        await asyncio.Event().wait()  # until cancelled
    target.progress(plan.name, "hold", 1, 1, 0.0)


async def run_plan(
    plan: PlanConfig, target: PlanTarget, store: ProgressStore | None, *, sleep: Sleep = asyncio.sleep
) -> None:
    """Run one configured plan on one board."""
    if plan.kind == "sweep":
        await run_sweep(plan, target, store, sleep=sleep)
    elif plan.kind == "modulate":
        await run_modulate(
            modulation_levels(plan),
            target,
            symbol_period_s=plan.symbol_period_s,
            freq_lo_mhz=plan.freq_lo_mhz,
            freq_hi_mhz=plan.freq_hi_mhz,
            voltage_v=plan.hold_voltage_v,
            ticket_diff=plan.hold_ticket_diff,
            name=plan.name,
            sleep=sleep,
        )
    else:
        await run_hold(plan, target, sleep=sleep)
