"""Plans: sweep order (reproducible shuffles), resume after restart, summaries, modulate schedule, hold."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from daemon.config import PlanConfig
from daemon.plan_points import SweepPoint, modulation_levels, sweep_points
from daemon.plan_progress import ProgressStore
from daemon.plan_summary import PointAccumulator, PointSummary, summarize
from daemon.plans import run_hold, run_modulate, run_sweep
from daemon.safety import Decision, Setpoint, Telemetry

GRID = PlanConfig(
    name="g",
    kind="sweep",
    voltage_v=(1.1, 1.2),
    freq_mhz=(400.0, 450.0, 500.0),
    ticket_diff=(1.0, 4.0),
    settle_s=1.0,
    dwell_s=2.0,
)


@dataclass
class FakeClock:
    t_ns: int = 0

    def __call__(self) -> int:
        return self.t_ns


@dataclass
class FakeTarget:
    """A board that 'mines' 10 valid nonces per second of dwell, at difficulty 1 per nonce."""

    clock: FakeClock = field(default_factory=FakeClock)
    name: str = "b0"
    chips: int = 1
    nonce_scale: float = 1.0
    requests: list[tuple[Setpoint, int]] = field(default_factory=list)
    progresses: list[tuple[int, int]] = field(default_factory=list)
    refuse_next: int = 0
    windows: list[PointAccumulator] = field(default_factory=list)
    fail_after_points: int | None = None
    summaries: list[PointSummary] = field(default_factory=list)

    async def sleep(self, s: float) -> None:
        self.clock.t_ns += int(s * 1e9)
        for acc in self.windows:
            n = round(10 * s)
            acc.add_events(np.ones(n, bool), np.ones(n))
            acc.add_telemetry(Telemetry(chip_temp_c=50.0, power_w=15.0))
        await asyncio.sleep(0)

    def request(self, sp: Setpoint, point: int) -> Decision:
        if self.refuse_next:
            self.refuse_next -= 1
            return Decision(None, "refused", "overheat")
        self.requests.append((sp, point))
        return Decision(sp, "applied")

    async def wait_ready(self) -> None:
        await asyncio.sleep(0)

    def open_window(self) -> PointAccumulator:
        if self.fail_after_points is not None and len(self.progresses) > self.fail_after_points:
            raise RuntimeError("power cut")
        acc = PointAccumulator()
        self.windows.append(acc)
        return acc

    def close_window(self, acc: PointAccumulator) -> None:
        self.windows.remove(acc)

    def progress(self, name: str, kind: str, i: int, n: int, eta_s: float | None) -> None:
        self.progresses.append((i, n))

    def summary(self, plan: str, s: PointSummary) -> None:
        self.summaries.append(s)


def test_grid_order_and_repeats() -> None:
    pts = sweep_points(replace(GRID, repeats=2))
    assert len(pts) == 24
    assert [p.index for p in pts] == list(range(24))
    assert (pts[0].voltage_v, pts[0].freq_mhz, pts[0].ticket_diff) == (1.1, 400.0, 1.0)
    assert (pts[1].voltage_v, pts[1].freq_mhz, pts[1].ticket_diff) == (1.1, 400.0, 4.0)
    assert [p.repeat for p in pts] == [0] * 12 + [1] * 12


def test_point_list() -> None:
    plan = PlanConfig(name="l", kind="sweep", points=((1.2, 485.0, 256.0), (1.25, 525.0, 1.0)))
    pts = sweep_points(plan)
    assert [p.setpoint for p in pts] == [Setpoint(1.2, 485.0, 256.0), Setpoint(1.25, 525.0, 1.0)]


def test_shuffle_is_reproducible_and_seed_dependent() -> None:
    a = sweep_points(replace(GRID, shuffle=True, seed=3, repeats=2))
    b = sweep_points(replace(GRID, shuffle=True, seed=3, repeats=2))
    c = sweep_points(replace(GRID, shuffle=True, seed=4, repeats=2))
    key = [(p.voltage_v, p.freq_mhz, p.ticket_diff) for p in a]
    assert key == [(p.voltage_v, p.freq_mhz, p.ticket_diff) for p in b]
    assert key != [(p.voltage_v, p.freq_mhz, p.ticket_diff) for p in c]
    assert sorted(key[:12]) == sorted((p.voltage_v, p.freq_mhz, p.ticket_diff) for p in sweep_points(GRID))
    assert key[:12] != key[12:]  # each repeat reshuffled


async def test_sweep_runs_every_point_and_summarises(tmp_path: Path) -> None:
    t = FakeTarget()
    out = await run_sweep(GRID, t, ProgressStore(tmp_path), sleep=t.sleep)
    assert [r[0] for r in t.requests] == [p.setpoint for p in sweep_points(GRID)]
    assert [r[1] for r in t.requests] == list(range(12))
    assert len(out) == 12
    assert t.summaries == out
    s = out[0]
    assert s.nonces == 20 and s.nonce_rate_hz == pytest.approx(10.0)  # dwell only, not settle
    assert s.power_mean_w == 15.0 and s.chip_temp_max_c == 50.0
    assert t.progresses[-1] == (12, 12)
    saved = json.loads(ProgressStore(tmp_path).path("g", "b0").read_text())
    assert saved["done"] == 12 and len(saved["summaries"]) == 12


async def test_sweep_resumes_after_restart(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path)
    t1 = FakeTarget(fail_after_points=4)
    with pytest.raises(RuntimeError, match="power cut"):
        await run_sweep(replace(GRID, shuffle=True, seed=9), t1, store, sleep=t1.sleep)
    done_before = [r[1] for r in t1.requests]
    assert done_before == [0, 1, 2, 3, 4]  # the fifth point was requested, then the "power cut"
    t2 = FakeTarget()
    out = await run_sweep(replace(GRID, shuffle=True, seed=9), t2, store, sleep=t2.sleep)
    assert [r[1] for r in t2.requests] == list(range(4, 12))  # resumes at the unfinished point
    assert len(out) == 8
    saved = json.loads(store.path("g", "b0").read_text())
    assert saved["done"] == 12 and [s["index"] for s in saved["summaries"]] == list(range(12))


async def test_changed_plan_or_completed_run_starts_afresh(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path)
    t = FakeTarget(fail_after_points=2)
    with pytest.raises(RuntimeError):
        await run_sweep(GRID, t, store, sleep=t.sleep)
    t2 = FakeTarget()
    await run_sweep(replace(GRID, seed=1, shuffle=True), t2, store, sleep=t2.sleep)
    assert [r[1] for r in t2.requests] == list(range(12))
    t3 = FakeTarget()
    await run_sweep(replace(GRID, seed=1, shuffle=True), t3, store, sleep=t3.sleep)
    assert len(t3.requests) == 12  # a completed run is run again from the start


async def test_corrupt_progress_file_starts_afresh(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path)
    store.path("g", "b0").write_text("{not json")
    t = FakeTarget()
    await run_sweep(GRID, t, store, sleep=t.sleep)
    assert len(t.requests) == 12


async def test_a_clamped_point_is_summarised_at_the_values_it_ran() -> None:
    t = FakeTarget()

    def clamp(sp: Setpoint, point: int) -> Decision:
        t.requests.append((sp, point))
        return Decision(Setpoint(sp.voltage_v, 450.0, sp.ticket_diff), "clamped", "freq_derated")

    t.request = clamp  # type: ignore[method-assign]
    plan = replace(GRID, voltage_v=(1.1,), freq_mhz=(500.0,), ticket_diff=(1.0,))
    (s,) = await run_sweep(plan, t, None, sleep=t.sleep)
    assert s.freq_mhz == 450.0 and s.clamped == "freq_derated"
    assert s.expected_rate_hz == pytest.approx(450 * 0.894e9 / 2**32)


async def test_refused_request_waits_and_retries(tmp_path: Path) -> None:
    t = FakeTarget(refuse_next=3)
    await run_sweep(
        replace(GRID, voltage_v=(1.1,), freq_mhz=(400.0,), ticket_diff=(1.0,)), t, None, sleep=t.sleep
    )
    assert len(t.requests) == 1


def test_summary_expected_rate_and_jth() -> None:
    pt = SweepPoint(0, 1.2, 485.0, 1.0)
    acc = PointAccumulator()
    n = 1010
    acc.add_events(np.ones(n, bool), np.ones(n))
    acc.add_events(np.zeros(10, bool), np.ones(10))
    acc.add_telemetry(Telemetry(power_w=10.0))
    s = summarize(pt, acc, 10.0, chips=1)
    assert s.expected_rate_hz == pytest.approx(485 * 0.894e9 / 2**32)  # ~101/s (docs/protocol.md)
    assert s.nonce_rate_hz == pytest.approx(102.0)
    assert s.invalid_fraction == pytest.approx(10 / 1020)
    assert s.hashrate_ghs == pytest.approx(101.0 * 2**32 / 1e9)
    assert s.j_per_th == pytest.approx(10.0 / (s.hashrate_ghs / 1000.0))


def test_modulation_levels_shape_range_seeded() -> None:
    plan = PlanConfig(name="m", kind="modulate", input=(0.0, 0.5, 1.0, 0.25), sub_slots=8, seed=2)
    lv = modulation_levels(plan)
    assert lv.shape == (4, 8)
    assert lv.min() >= 0.0 and lv.max() <= 1.0
    assert np.allclose(lv[1], 0.5)  # u = 0.5 is the centre whatever the mask
    assert np.array_equal(lv, modulation_levels(plan))
    assert not np.array_equal(lv, modulation_levels(replace(plan, seed=3)))


async def test_modulate_schedule_and_slot_points() -> None:
    t = FakeTarget()
    levels = np.array([[0.0, 1.0], [0.5, 0.25]])
    starts = await run_modulate(
        levels,
        t,
        symbol_period_s=1.0,
        freq_lo_mhz=400.0,
        freq_hi_mhz=500.0,
        voltage_v=1.2,
        ticket_diff=1.0,
        clock=t.clock,
        sleep=t.sleep,
    )
    assert [r[0].freq_mhz for r in t.requests] == [400.0, 500.0, 450.0, 425.0]
    assert [r[1] for r in t.requests] == [0, 1, 2, 3]
    assert starts.tolist() == [[0, 500_000_000], [1_000_000_000, 1_500_000_000]]
    assert t.clock.t_ns == 2_000_000_000


async def test_hold_for_a_duration() -> None:
    t = FakeTarget()
    plan = PlanConfig(name="h", kind="hold", hold_voltage_v=1.2, hold_freq_mhz=485.0, duration_s=5.0)
    await run_hold(plan, t, sleep=t.sleep)
    assert t.requests == [(Setpoint(1.2, 485.0, 256.0), 0)]
    assert t.clock.t_ns == 5_000_000_000
