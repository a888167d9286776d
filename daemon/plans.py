"""Plans (experiments): ``sweep`` over (voltage, frequency, ticket difficulty) points, ``modulate`` setpoints
from an input sequence (the hardware-in-the-loop reservoir), and ``hold`` one setpoint.

Plans talk to a board only through :class:`PlanTarget` (the supervisor implements it), so every setpoint they
ask for passes the safety gate. Sweep progress is saved as JSON in the state directory (written atomically:
temp file, fsync, rename) and resumes after a restart when the plan's points are unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import math
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from daemon.config import PlanConfig
from daemon.recording import FILE_MODE, make_dir
from daemon.safety import Decision, Setpoint, Telemetry

log = logging.getLogger(__name__)

#: Hashes per small core per clock cycle: hashrate (GH/s) = f (MHz) * 0.894 per chip (docs/protocol.md
#: "Rates").
GHS_PER_MHZ = 0.894
#: Hashes represented by one share at difficulty 1.
HASHES_PER_DIFF1 = float(2**32)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One sweep point; ``index`` is its position in the (possibly shuffled) run order."""

    index: int
    voltage_v: float
    freq_mhz: float
    ticket_diff: float
    repeat: int = 0

    @property
    def setpoint(self) -> Setpoint:
        return Setpoint(self.voltage_v, self.freq_mhz, self.ticket_diff)


def sweep_points(plan: PlanConfig) -> list[SweepPoint]:
    """The run order of a sweep: grid (voltage-major product) or list, times ``repeats``; each repeat is
    shuffled with ``random.Random(seed)`` when ``shuffle`` (reproducible for a given seed)."""
    if plan.points:
        base = [(float(p[0]), float(p[1]), float(p[2])) for p in plan.points]
    else:
        base = list(itertools.product(plan.voltage_v, plan.freq_mhz, plan.ticket_diff))
    rng = random.Random(plan.seed)
    out: list[SweepPoint] = []
    for r in range(plan.repeats):
        order = list(base)
        if plan.shuffle:
            rng.shuffle(order)
        start = len(out)
        out.extend(SweepPoint(start + i, v, f, d, r) for i, (v, f, d) in enumerate(order))
    return out


def fingerprint(points: list[SweepPoint]) -> str:
    """Identity of a run order: progress is resumed only for the same points in the same order."""
    text = json.dumps([(p.voltage_v, p.freq_mhz, p.ticket_diff, p.repeat) for p in points])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- summaries


@dataclass(slots=True)
class PointAccumulator:
    """Counts what the supervisor sees while a point's dwell window is open."""

    nonces: int = 0
    invalid: int = 0
    valid_diff_sum: float = 0.0  # sum of ticket difficulty over valid nonces
    chip_temp_max_c: float | None = None
    regulator_temp_max_c: float | None = None
    power_sum_w: float = 0.0
    power_n: int = 0
    trips: int = 0

    def add_events(self, valid: np.ndarray, ticket_diff: np.ndarray) -> None:
        """Fold one event batch (bool valid, ticket difficulty per row) into the counts."""
        n = len(valid)
        nv = int(np.count_nonzero(valid))
        self.nonces += n
        self.invalid += n - nv
        self.valid_diff_sum += float(ticket_diff[valid].sum(dtype=np.float64))

    def add_telemetry(self, t: Telemetry) -> None:
        if t.chip_temp_c is not None:
            self.chip_temp_max_c = max(t.chip_temp_c, self.chip_temp_max_c or -math.inf)
        if t.regulator_temp_c is not None:
            self.regulator_temp_max_c = max(t.regulator_temp_c, self.regulator_temp_max_c or -math.inf)
        if t.power_w is not None:
            self.power_sum_w += t.power_w
            self.power_n += 1


@dataclass(frozen=True, slots=True)
class PointSummary:
    """Per-point result. Rates in 1/s, hashrate in GH/s, energy in J/TH (None without a power reading)."""

    index: int
    voltage_v: float
    freq_mhz: float
    ticket_diff: float
    dwell_s: float
    nonces: int
    invalid: int
    nonce_rate_hz: float
    expected_rate_hz: float
    rate_ratio: float | None
    invalid_fraction: float
    hashrate_ghs: float
    chip_temp_max_c: float | None
    regulator_temp_max_c: float | None
    power_mean_w: float | None
    j_per_th: float | None
    trips: int
    clamped: str = ""  # the gate's clamp reasons when the point ran at other values (then they are used)


def summarize(
    point: SweepPoint, acc: PointAccumulator, dwell_s: float, chips: int, nonce_scale: float = 1.0
) -> PointSummary:
    """Summary of one point. Expected rate = chips * f * 0.894e9 / (d * 2^32) * nonce_scale
    (docs/protocol.md)."""
    dwell = max(dwell_s, 1e-9)
    expected = chips * point.freq_mhz * GHS_PER_MHZ * 1e9 / (point.ticket_diff * HASHES_PER_DIFF1)
    expected *= nonce_scale
    rate = acc.nonces / dwell
    hashrate_ghs = acc.valid_diff_sum * HASHES_PER_DIFF1 / nonce_scale / dwell / 1e9
    power = acc.power_sum_w / acc.power_n if acc.power_n else None
    jth = power / (hashrate_ghs / 1000.0) if power is not None and hashrate_ghs > 0 else None
    return PointSummary(
        index=point.index,
        voltage_v=point.voltage_v,
        freq_mhz=point.freq_mhz,
        ticket_diff=point.ticket_diff,
        dwell_s=dwell_s,
        nonces=acc.nonces,
        invalid=acc.invalid,
        nonce_rate_hz=rate,
        expected_rate_hz=expected,
        rate_ratio=rate / expected if expected > 0 else None,
        invalid_fraction=acc.invalid / acc.nonces if acc.nonces else 0.0,
        hashrate_ghs=hashrate_ghs,
        chip_temp_max_c=acc.chip_temp_max_c,
        regulator_temp_max_c=acc.regulator_temp_max_c,
        power_mean_w=power,
        j_per_th=jth,
        trips=acc.trips,
    )


# ---------------------------------------------------------------------------------------------- progress


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` atomically (temp file in the same directory, fsync, rename, fsync dir).

    The file is created 0640 and missing directories 0750 whatever the umask (state is never world-readable).
    """
    make_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with open(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fd, FILE_MODE)  # umask-proof, and fixes a leftover temp file's mode
            json.dump(obj, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()  # never leave a half-written temp file (e.g. on a full disk)
        raise
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(slots=True)
class SweepProgress:
    """Saved state of one sweep on one board: points done and their summaries."""

    plan: str
    board: str
    fingerprint: str
    total: int
    done: int = 0
    summaries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.done >= self.total


class ProgressStore:
    """Progress files ``<dir>/<plan>.<board>.json``; unreadable or mismatched files start afresh."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def path(self, plan: str, board: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{plan}.{board}")
        return self.dir / f"{safe}.json"

    def load(self, plan: str, board: str, fp: str, total: int) -> SweepProgress:
        """Saved progress when it matches ``fp`` and is incomplete; otherwise a fresh start."""
        p = self.path(plan, board)
        fresh = SweepProgress(plan, board, fp, total)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            prog = SweepProgress(**data)
        except FileNotFoundError:
            return fresh
        except (OSError, ValueError, TypeError) as exc:
            log.warning(
                "plan %s on %s: progress file %s unreadable (%s); starting afresh", plan, board, p, exc
            )
            return fresh
        if prog.fingerprint != fp or prog.total != total:
            log.info("plan %s on %s: points changed since the saved progress; starting afresh", plan, board)
            return fresh
        if prog.complete:
            log.info("plan %s on %s: previous run complete; starting a new run", plan, board)
            return fresh
        return prog

    def save(self, prog: SweepProgress) -> None:
        write_json_atomic(self.path(prog.plan, prog.board), asdict(prog))


# ---------------------------------------------------------------------------------------------- runners


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


def modulation_levels(plan: PlanConfig) -> np.ndarray:
    """Levels 0..1, shape (symbols, sub_slots): 0.5 + (u - 0.5) * mask, mask = random sign * U(0.5, 1)."""
    rng = np.random.default_rng(plan.seed)
    mask = rng.choice([-1.0, 1.0], plan.sub_slots) * rng.uniform(0.5, 1.0, plan.sub_slots)
    u = np.asarray(plan.input, dtype=np.float64)[:, None]
    return np.clip(0.5 + (u - 0.5) * mask[None, :], 0.0, 1.0)


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
