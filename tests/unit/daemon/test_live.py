"""Live reservoir service on in-process substrates: parsing, prediction, latency, metrics, the plan path."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from daemon.events import Pipeline, event_slots, make_event_batch
from daemon.live import (
    LiveModel,
    LiveParams,
    LiveService,
    PlanSource,
    SubstrateSource,
    parse_input,
    train_live_model,
)
from daemon.plan_summary import PointAccumulator, PointSummary
from daemon.safety import Decision, Setpoint
from reservoir.substrate import EventSlot, RateModelSubstrate, SlotSchedule
from reservoir.windows import slot_bounds
from tests.polling import until

PARAMS = LiveParams(n_sub=4, slot_ns=20_000_000, seed=2)


class StepClock:
    """A clock that advances 1 ms on every reading (latency = readings between arrival and publish)."""

    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        self.t += 1_000_000
        return self.t


def _model(n: int = 200, seed: int = 1) -> tuple[LiveModel, RateModelSubstrate, np.ndarray]:
    sub = RateModelSubstrate(n_chips=1, rate_hz=20_000.0, seed=seed)
    u = np.random.default_rng(seed).uniform(0.0, 1.0, n)
    return train_live_model(sub, list(u), list(u), PARAMS, alpha="gcv"), sub, u


@contextlib.asynccontextmanager
async def serving(service: LiveService) -> AsyncIterator[None]:
    task = asyncio.create_task(service.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@given(seq=st.integers(-(2**62), 2**62), u=st.floats(allow_nan=False, allow_infinity=False))
def test_inputs_parse(seq: int, u: float) -> None:
    assert parse_input(json.dumps({"seq": seq, "u": u}).encode()) == (seq, u)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff",
        b"[1]",
        b'{"u": 1}',
        b'{"seq": 1}',
        b'{"seq": "1", "u": 1}',
        b'{"seq": 1, "u": true}',
        b'{"seq": 1, "u": NaN}',
        b'{"seq": 1.5, "u": 1}',
        b'{"seq": 1, "u": "x"}',
    ],
)
def test_malformed_inputs_raise(payload: bytes) -> None:
    with pytest.raises(ValueError):
        parse_input(payload)


def test_scale_maps_the_training_range_and_clips() -> None:
    p = LiveParams(u_lo=-2.0, u_hi=2.0)
    assert [p.scale(v) for v in (-2.0, 0.0, 2.0, 5.0, -9.0)] == [-1.0, 0.0, 1.0, 1.0, -1.0]


def test_model_file_round_trip(tmp_path: Path) -> None:
    model, _, _ = _model(n=40)
    model.save(tmp_path / "live.npz")
    back = LiveModel.load(tmp_path / "live.npz")
    assert back.params == model.params
    X = np.random.default_rng(0).standard_normal((5, model.readout.n_features_in_))
    np.testing.assert_allclose(back.readout.predict(X), model.readout.predict(X))


async def test_service_predicts_in_order_with_measured_latency() -> None:
    model, sub, _ = _model()
    published: list[dict[str, Any]] = []
    registry = CollectorRegistry()
    service = LiveService(
        model, SubstrateSource(PARAMS, sub), published.append, registry=registry, clock=StepClock()
    )
    u_test = np.random.default_rng(9).uniform(0.0, 1.0, 40)
    async with serving(service):
        for i, v in enumerate(u_test):
            assert service.offer(json.dumps({"seq": i, "u": float(v)}).encode())
        await until(lambda: len(published) == len(u_test), within_s=30, poll_s=0.001)
    assert [m["seq"] for m in published] == list(range(len(u_test)))
    # the clock reads 1..40 ms at the 40 arrivals and 41..80 ms at the publications: queueing included
    assert [m["latency_s"] for m in published] == [pytest.approx(0.040)] * len(u_test)
    y = np.array([m["y"] for m in published])
    assert np.corrcoef(y, u_test)[0, 1] > 0.8  # the readout tracks the input through the substrate
    assert registry.get_sample_value("asicrc_live_predictions_total") == len(u_test)
    assert registry.get_sample_value("asicrc_live_latency_seconds_count") == len(u_test)
    assert registry.get_sample_value("asicrc_live_prediction") == pytest.approx(y[-1])


async def test_malformed_inputs_and_overflow_are_counted() -> None:
    model, sub, _ = _model(n=30)
    published: list[dict[str, Any]] = []
    registry = CollectorRegistry()
    service = LiveService(
        model, SubstrateSource(PARAMS, sub), published.append, registry=registry, queue_size=3
    )
    assert not service.offer(b"not json")
    for i in range(5):  # nothing runs yet: the two oldest are dropped
        service.offer(json.dumps({"seq": i, "u": 0.5}).encode())
    async with serving(service):
        await until(lambda: len(published) == 3, within_s=30, poll_s=0.001)
    assert [m["seq"] for m in published] == [2, 3, 4]
    assert registry.get_sample_value("asicrc_live_malformed_total") == 1
    assert registry.get_sample_value("asicrc_live_dropped_total") == 2
    assert registry.get_sample_value("asicrc_live_inputs_total") == 5


class FailingSource:
    async def step(self, x: float) -> np.ndarray:
        raise RuntimeError("board gone")


async def test_a_failing_step_is_counted_and_the_service_goes_on() -> None:
    model, _, _ = _model(n=30)
    registry = CollectorRegistry()
    service = LiveService(model, FailingSource(), lambda m: None, registry=registry)
    async with serving(service):
        service.offer(b'{"seq": 1, "u": 0.2}')
        service.offer(b'{"seq": 2, "u": 0.2}')
        await until(
            lambda: registry.get_sample_value("asicrc_live_errors_total") == 2, within_s=30, poll_s=0.001
        )


def test_a_readout_for_another_board_shape_is_refused() -> None:
    model, _, _ = _model(n=30)
    two_chips = SubstrateSource(PARAMS, RateModelSubstrate(n_chips=2))
    with pytest.raises(ValueError, match="features"):
        LiveService(model, two_chips, lambda m: None, registry=CollectorRegistry())


class StuckSource:
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def step(self, x: float) -> np.ndarray:
        await self.release.wait()
        return np.zeros(1)


async def test_a_stuck_step_times_out_and_is_counted() -> None:
    model, _, _ = _model(n=30)
    registry = CollectorRegistry()
    service = LiveService(model, StuckSource(), lambda m: None, registry=registry, step_timeout_s=0.01)
    async with serving(service):
        service.offer(b'{"seq": 1, "u": 0.2}')
        await until(
            lambda: registry.get_sample_value("asicrc_live_errors_total") == 1, within_s=30, poll_s=0.001
        )


def test_substrate_source_runs_one_step_at_a_time() -> None:
    source = SubstrateSource(PARAMS, RateModelSubstrate())
    assert source._busy.acquire(blocking=False)  # as if an abandoned step still held the substrate
    with pytest.raises(RuntimeError, match="busy"):
        asyncio.run(source.step(0.0))


class FakeTarget:
    """A PlanTarget whose 'board' emits 1 event per 10 MHz of each granted setpoint, at the request time."""

    name = "fake"
    chips = 1
    nonce_scale = 1.0

    def __init__(self, pipeline: Pipeline, clock: StepClock) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self.requests: list[Setpoint] = []

    def request(self, sp: Setpoint, point: int) -> Decision:
        self.requests.append(sp)
        n = int(sp.freq_mhz // 10)
        t = np.full(n, self.clock.t + 1, dtype=np.int64)  # just after the slot start run_modulate read
        z = np.zeros(n, np.int64)
        self.pipeline.publish(
            make_event_batch(
                self.name,
                t_host_ns=t,
                t_ns=t,
                chip=z,
                core=np.arange(n) % 112,
                small_core=z,
                job_id=z,
                nonce=z,
                valid=np.ones(n, bool),
                voltage_v=sp.voltage_v,
                freq_mhz=sp.freq_mhz,
                ticket_diff=sp.ticket_diff,
                read_id=z,
            )
        )
        return Decision(sp, "applied")

    async def wait_ready(self) -> None:
        return None

    def open_window(self) -> PointAccumulator:
        return PointAccumulator()

    def close_window(self, acc: PointAccumulator) -> None:
        return None

    def progress(self, name: str, kind: str, i: int, n: int, eta_s: float | None) -> None:
        return None

    def summary(self, plan: str, s: PointSummary) -> None:
        return None


async def test_plan_source_drives_the_modulate_plan_through_the_target() -> None:
    clock = StepClock()
    pipeline = Pipeline(clock=clock)
    target = FakeTarget(pipeline, clock)

    async def sleep(s: float) -> None:
        clock.t += int(max(s, 0.0) * 1e9)

    source = PlanSource(PARAMS, target, pipeline, clock=clock, sleep=sleep, voltage_v=1.15, ticket_diff=2.0)
    state = await source.step(0.6)
    want = PARAMS.reservoir(RateModelSubstrate()).setpoints(np.array([[0.6]]))
    got = np.array([sp.freq_mhz for sp in target.requests])
    np.testing.assert_allclose(got, want)
    assert {(sp.voltage_v, sp.ticket_diff) for sp in target.requests} == {(1.15, 2.0)}
    counts = state.reshape(PARAMS.n_sub, -1)[:, 0]  # feature 0 of each sub-slot: event count
    starts, ends = slot_bounds(source.last_starts_ns, PARAMS.slot_ns)
    assert len(starts) == PARAMS.n_sub
    # counts per nominal slot (as AsicReservoir scales them): each slot saw freq / 10 events
    np.testing.assert_allclose(counts * (ends - starts) / PARAMS.slot_ns, want // 10)
    assert pipeline.stats() == {}  # its subscription is gone


class Replay:
    """A Substrate handing back fixed slots (whatever the schedule)."""

    def __init__(self, slots: list[EventSlot], n_chips: int) -> None:
        self.slots, self.n_chips = slots, n_chips

    def run(self, schedule: SlotSchedule) -> list[EventSlot]:
        assert schedule.n_slots == len(self.slots)
        return self.slots


async def test_plan_source_and_the_asic_substrate_window_the_same_events_alike() -> None:
    """The live service's state row equals the asic reservoir's row over the slots the asic substrate
    (``BoardSubstrate``) would cut from the same events and starts: both use ``event_slots``."""
    clock = StepClock()
    pipeline = Pipeline(clock=clock)
    spy = pipeline.subscribe("spy", maxsize=1000, logs=False)
    target = FakeTarget(pipeline, clock)

    async def sleep(s: float) -> None:
        clock.t += int(max(s, 0.0) * 1e9)

    source = PlanSource(PARAMS, target, pipeline, clock=clock, sleep=sleep)
    state = await source.step(-0.3)
    slots = event_slots(spy.drain(), source.last_starts_ns, PARAMS.slot_ns, 1)
    assert sum(len(s.t_ns) for s in slots) > 0
    row = PARAMS.reservoir(Replay(slots, 1)).run(np.array([[-0.3]]))[0]
    np.testing.assert_array_equal(state, row)
